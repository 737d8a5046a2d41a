// A fault-injecting TCP proxy per directed link between two nodes, in the spirit of Jepsen's and
// Toxiproxy's: node A dials node B at A's own proxy for B (node config `peers`), so the harness can
// cut, black-hole or delay exactly the A→B link while every other link stays as it is. The proxy sees
// only TLS records: it can drop, stall and delay bytes, never read or forge them.
import { Socket, createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';

/**
 * up: bytes flow (after `delayMs`, in order); cut: connections are reset and new ones refused at once,
 * as when a host is down; blackhole: bytes vanish and connections hang, as behind a broken switch —
 * the endpoints find out only by their own timeouts.
 */
export type LinkState = 'up' | 'cut' | 'blackhole';

interface Pipe {
  readonly client: Socket;
  readonly upstream: Socket;
  /** Bytes were dropped: the TLS stream is broken and the pipe is closed when the link heals. */
  lostBytes: boolean;
}

export class FaultLink {
  private state: LinkState = 'up';
  private delayMs = 0;
  private jitterMs = 0;
  private readonly pipes = new Set<Pipe>();
  private server: Server | undefined;
  port = 0;

  constructor(
    readonly from: string,
    readonly to: string,
    private readonly target: { host: string; port: number },
    private readonly random: () => number,
  ) {}

  async listen(): Promise<number> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((ready, failed) => {
      server.once('error', failed);
      server.listen(0, '127.0.0.1', () => ready());
    });
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  set(state: LinkState): void {
    this.state = state;
    if (state === 'cut') for (const pipe of this.pipes) this.destroy(pipe);
    if (state === 'up') for (const pipe of this.pipes) if (pipe.lostBytes) this.destroy(pipe);
  }

  /** Every chunk waits `delayMs` plus up to `jitterMs` more, but never overtakes an earlier one. */
  delay(delayMs: number, jitterMs = 0): void {
    this.delayMs = delayMs;
    this.jitterMs = jitterMs;
  }

  close(): void {
    for (const pipe of this.pipes) this.destroy(pipe);
    this.server?.close();
  }

  private accept(client: Socket): void {
    if (this.state === 'cut') {
      client.resetAndDestroy();
      return;
    }
    const upstream = new Socket();
    const pipe: Pipe = { client, upstream, lostBytes: false };
    this.pipes.add(pipe);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    upstream.connect(this.target.port, this.target.host);
    this.forward(pipe, client, upstream);
    this.forward(pipe, upstream, client);
    const end = (): void => this.destroy(pipe);
    for (const socket of [client, upstream]) {
      socket.once('close', end);
      socket.on('error', end);
    }
  }

  private forward(pipe: Pipe, source: Socket, sink: Socket): void {
    // One queue per direction and one timer for its head, so chunks leave in the order they came.
    const queue: { due: number; chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const drain = (): void => {
      timer = undefined;
      while (queue.length > 0 && queue[0]!.due <= Date.now()) {
        const { chunk } = queue.shift()!;
        if (this.pipes.has(pipe)) this.write(sink, source, chunk);
      }
      if (queue.length > 0) timer = setTimeout(drain, queue[0]!.due - Date.now());
    };
    source.on('data', (chunk: Buffer) => {
      if (this.state !== 'up') {
        pipe.lostBytes = true;
        return;
      }
      if (this.delayMs === 0 && this.jitterMs === 0 && queue.length === 0) {
        this.write(sink, source, chunk);
        return;
      }
      const due = Math.max(
        queue.at(-1)?.due ?? 0,
        Date.now() + this.delayMs + Math.floor(this.random() * this.jitterMs),
      );
      queue.push({ due, chunk });
      timer ??= setTimeout(drain, due - Date.now());
    });
  }

  /** Backpressure: a full socket pauses its source, as a real network's window would. */
  private write(sink: Socket, source: Socket, chunk: Buffer): void {
    if (sink.destroyed) return;
    if (!sink.write(chunk)) {
      source.pause();
      sink.once('drain', () => source.resume());
    }
  }

  private destroy(pipe: Pipe): void {
    if (!this.pipes.delete(pipe)) return;
    pipe.client.destroy();
    pipe.upstream.destroy();
  }
}

/** One FaultLink per ordered pair of nodes. */
export class FaultNetwork {
  private readonly links = new Map<string, FaultLink>();

  constructor(
    private readonly nodes: ReadonlyMap<string, { host: string; port: number }>,
    private readonly random: () => number,
  ) {
    for (const from of nodes.keys())
      for (const [to, target] of nodes)
        if (from !== to) this.links.set(`${from}>${to}`, new FaultLink(from, to, target, random));
  }

  async start(): Promise<void> {
    await Promise.all([...this.links.values()].map((link) => link.listen()));
  }

  /** What node `from` puts in its config `peers`: every other node at its proxy. */
  peersOf(from: string): Record<string, string> {
    const peers: Record<string, string> = {};
    for (const link of this.links.values()) if (link.from === from) peers[link.to] = `127.0.0.1:${link.port}`;
    return peers;
  }

  /** Sets both directions of every link between a node of `side` and a node outside it. */
  partition(side: readonly string[], state: Exclude<LinkState, 'up'>): void {
    for (const link of this.links.values())
      if (side.includes(link.from) !== side.includes(link.to)) link.set(state);
  }

  /** Delays both directions of every link touching a node of `nodes`. */
  slow(nodes: readonly string[], delayMs: number, jitterMs: number): void {
    for (const link of this.links.values())
      if (nodes.includes(link.from) || nodes.includes(link.to)) link.delay(delayMs, jitterMs);
  }

  heal(): void {
    for (const link of this.links.values()) {
      link.delay(0);
      link.set('up');
    }
  }

  close(): void {
    for (const link of this.links.values()) link.close();
  }
}
