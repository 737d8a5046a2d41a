/**
 * The discrete-event core of `npm run bench:scale`: a virtual clock with an event queue, simulated
 * machines that each own one CPU, and links with a one-way latency and a bandwidth.
 *
 * Time is VIRTUAL (milliseconds). What a machine does is real code (consensus cores, Ed25519 through
 * node:crypto); the real time that code takes, measured with performance.now(), is charged to that
 * machine's virtual CPU. A machine runs one piece of work at a time, in arrival order; what the work
 * sends leaves when the work ends. Each directed link is a FIFO: a message waits for the link to be
 * free, occupies it for bytes·8 ÷ bandwidth, then arrives `latency` later.
 *
 * Everything runs on one thread, so every measurement is of one piece of work running alone.
 */
import { performance } from 'node:perf_hooks';
import { EventQueue } from '../../src/sim/event-queue.js';

/**
 * The virtual clock: the simulator's event queue (src/sim/event-queue.ts, a min-heap by time and
 * insertion order, so equal times run first-scheduled first) and the time of the event being run.
 */
export class VirtualClock {
  private readonly queue = new EventQueue<() => void>();
  /** The virtual time of the event being run (ms). */
  now = 0;

  get size(): number {
    return this.queue.size;
  }

  schedule(time: number, run: () => void): void {
    if (time < this.now) throw new Error(`event scheduled in the past (${time} < ${this.now})`);
    this.queue.push(time, run);
  }

  /** Runs the earliest event; returns false if there is none. */
  runNext(): boolean {
    const next = this.queue.pop();
    if (next === undefined) return false;
    this.now = next.time;
    next.event();
    return true;
  }
}

export interface LinkOptions {
  /** One-way propagation delay of every link (ms). */
  readonly latencyMs: number;
  /** Bandwidth of every link, in bits per second. */
  readonly bandwidthBitsPerSecond: number;
}

/** Per-link FIFO transmission with latency and serialization delay. */
export class Network {
  private readonly linkFreeAt = new Map<string, number>();
  messages = 0;
  bytes = 0;

  constructor(
    private readonly events: VirtualClock,
    readonly options: LinkOptions,
  ) {}

  /** Sends `size` bytes from `from` to `to`, departing no earlier than `departAt`; `arrive` runs on arrival. */
  transmit(from: string, to: string, size: number, departAt: number, arrive: () => void): void {
    const link = `${from}>${to}`;
    const start = Math.max(departAt, this.linkFreeAt.get(link) ?? 0);
    const done = start + (size * 8 * 1000) / this.options.bandwidthBitsPerSecond;
    this.linkFreeAt.set(link, done);
    this.messages += 1;
    this.bytes += size;
    this.events.schedule(done + this.options.latencyMs, arrive);
  }
}

/**
 * How a piece of work's cost is measured: `wall` is performance.now(); `cpu` is this process's CPU
 * time (process.cpuUsage), which leaves out time the OS gave to other processes on a shared machine.
 */
export type ClockKind = 'wall' | 'cpu';
type CostClock = () => number;

const clocks: Record<ClockKind, CostClock> = {
  wall: () => performance.now(),
  cpu: () => {
    const usage = process.cpuUsage();
    return (usage.user + usage.system) / 1000;
  },
};

/** Work for a machine's CPU; `now` is the virtual time at which it starts. */
export type Work = (now: number) => void;

/** A simulated machine: one CPU that runs queued work in arrival order and is charged its real cost. */
export class Machine {
  private readonly inbox: Work[] = [];
  private readonly urgent: Work[] = [];
  private inboxHead = 0;
  private scheduled = false;
  private running = false;
  private outbox: ((finish: number) => void)[] = [];
  /** Virtual time at which the CPU is free. */
  busyUntil = 0;
  /** Total CPU time charged (ms). */
  busyMs = 0;
  /** Pieces of work run. */
  runs = 0;

  constructor(
    readonly id: string,
    private readonly events: VirtualClock,
    private readonly network: Network,
    private readonly clock: CostClock,
  ) {}

  /** Queues work arriving now (at the event queue's current time). */
  deliver(work: Work): void {
    this.inbox.push(work);
    if (!this.scheduled && !this.running) this.scheduleNext();
  }

  /**
   * Queues work ahead of the ordinary inbox (still after the work running now): a request served by a
   * separate handler, such as reading the block store, rather than waiting behind consensus input.
   * Its cost is charged to this machine like any other work.
   */
  deliverUrgent(work: Work): void {
    this.urgent.push(work);
    if (!this.scheduled && !this.running) this.scheduleNext();
  }

  /** Work waiting for the CPU. */
  get backlog(): number {
    return this.inbox.length - this.inboxHead + this.urgent.length;
  }

  /** During work: runs `effect` with the time the current work finishes (when its output leaves). */
  afterWork(effect: (finish: number) => void): void {
    if (!this.running) throw new Error(`${this.id}: afterWork outside of work`);
    this.outbox.push(effect);
  }

  /** During work: sends `size` bytes to `peer`, which runs `work` when it arrives. */
  sendTo(peer: Machine, size: number, work: Work, urgent = false): void {
    this.afterWork((finish) =>
      this.network.transmit(this.id, peer.id, size, finish, () =>
        urgent ? peer.deliverUrgent(work) : peer.deliver(work),
      ),
    );
  }

  /** During work: sends `size` bytes to an endpoint that has no CPU model (a client). */
  sendToEndpoint(endpoint: string, size: number, arrive: () => void): void {
    this.afterWork((finish) => this.network.transmit(this.id, endpoint, size, finish, arrive));
  }

  private scheduleNext(): void {
    this.scheduled = true;
    this.events.schedule(Math.max(this.events.now, this.busyUntil), () => this.runOne());
  }

  private takeNext(): Work {
    const work = this.inbox[this.inboxHead++]!;
    if (this.inboxHead === this.inbox.length) {
      this.inbox.length = 0;
      this.inboxHead = 0;
    } else if (this.inboxHead > 4096) {
      this.inbox.splice(0, this.inboxHead);
      this.inboxHead = 0;
    }
    return work;
  }

  private runOne(): void {
    this.scheduled = false;
    const work = this.urgent.length > 0 ? this.urgent.shift()! : this.takeNext();
    const start = this.events.now;
    this.running = true;
    const began = this.clock();
    try {
      work(start);
    } finally {
      this.running = false;
    }
    const cost = this.clock() - began;
    const finish = start + cost;
    this.busyUntil = finish;
    this.busyMs += cost;
    this.runs += 1;
    const outbox = this.outbox;
    this.outbox = [];
    for (const effect of outbox) effect(finish);
    if (this.backlog > 0) this.scheduleNext();
  }
}

/** The simulated world of one run: the clock, the network and the machines. */
export class World {
  readonly events = new VirtualClock();
  readonly network: Network;
  readonly machines: Machine[] = [];

  constructor(
    link: LinkOptions,
    private readonly clock: ClockKind = 'wall',
  ) {
    this.network = new Network(this.events, link);
  }

  machine(id: string): Machine {
    const machine = new Machine(id, this.events, this.network, clocks[this.clock]);
    this.machines.push(machine);
    return machine;
  }

  /** Calls `work` on `machine` every `intervalMs` from `firstAt`, skipping a beat while one is queued. */
  every(machine: Machine, intervalMs: number, firstAt: number, work: Work): void {
    let pending = false;
    const fire = (): void => {
      if (!pending) {
        pending = true;
        machine.deliver((now) => {
          pending = false;
          work(now);
        });
      }
      this.events.schedule(this.events.now + intervalMs, fire);
    };
    this.events.schedule(firstAt, fire);
  }
}
