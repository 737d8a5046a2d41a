/**
 * The reference transfer of bench/datapath.ts: the same payload, end-to-end encrypted with the
 * envelope (`encryptPayload`) in process A, sent over ONE loopback connection (plain TCP, or TLS
 * 1.3) to process B, which checks and decrypts it (`decryptPayload`) and hashes the plaintext. No
 * storage, no consensus, no relay: what two processes on this machine can do with the envelope.
 * The worker processes are lib/single-hop-worker.ts (which explains the 16 MiB envelope segments).
 *
 * Timing runs from the moment A is told to start (both processes are up, keys made, B listening) to
 * B's report that the last byte is decrypted and hashed.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { nextJsonLine, startTypeScriptReady, stopChildren } from '../../test/support/processes.js';
import type { TrackedChild } from '../../test/support/processes.js';
import type { RssSampler } from '../../test/support/process-memory.js';

const workerScript = fileURLToPath(new URL('./single-hop-worker.ts', import.meta.url));

export interface SingleHopOptions {
  readonly bytes: number;
  readonly segmentBytes: number;
  readonly tls: boolean;
  readonly sampler: RssSampler;
  readonly timeoutMs: number;
}

export interface WorkerReport {
  readonly pid: number;
  readonly seconds: number;
  /** Lifetime peak resident set, as the worker read it from /proc/self/status at the end. */
  readonly hwmBytes: number;
  readonly cpuSecondsDuring: number;
}

export interface SingleHopResult {
  readonly transport: 'tcp' | 'tls1.3';
  readonly bytes: number;
  readonly segmentBytes: number;
  readonly segments: number;
  readonly seconds: number;
  readonly sha256: string;
  readonly sender: WorkerReport;
  readonly receiver: WorkerReport;
}

export async function runSingleHop(options: SingleHopOptions): Promise<SingleHopResult> {
  const transport = options.tls ? 'tls1.3' : 'tcp';
  const common = [
    '--bytes',
    String(options.bytes),
    '--segment-bytes',
    String(options.segmentBytes),
    ...(options.tls ? ['--tls'] : []),
  ];
  const children: TrackedChild[] = [];
  try {
    const receiving = await startTypeScriptReady<{ port: number; encryptionKey: string }>(
      `single-hop-${transport}-receiver`,
      workerScript,
      ['receive', ...common],
      (message) => message['event'] === 'ready',
    );
    const receiver = receiving.child;
    const ready = receiving.ready;
    children.push(receiver);
    options.sampler.watch(receiver.name, receiver.pid);
    const { child: sender } = await startTypeScriptReady(
      `single-hop-${transport}-sender`,
      workerScript,
      ['send', '--port', String(ready.port), '--recipient-key', ready.encryptionKey, ...common],
      (message) => message['event'] === 'ready',
    );
    children.push(sender);
    options.sampler.watch(sender.name, sender.pid);

    const isDone = (message: Record<string, unknown>): boolean => message['event'] === 'done';
    const started = performance.now();
    sender.child.stdin?.write('go\n');
    const [received, sent] = await Promise.all([
      nextJsonLine<WorkerReport & { bytes: number; sha256: string; segments: number }>(
        receiver,
        isDone,
        options.timeoutMs,
      ).then((report) => ({ report, at: performance.now() })),
      nextJsonLine<WorkerReport>(sender, isDone, options.timeoutMs),
    ]);
    const seconds = (received.at - started) / 1000;
    if (received.report.bytes !== options.bytes) {
      throw new Error(
        `single hop: the receiver decrypted ${received.report.bytes} bytes, not ${options.bytes}`,
      );
    }
    const worker = (report: WorkerReport): WorkerReport => ({
      pid: report.pid,
      seconds: report.seconds,
      hwmBytes: report.hwmBytes,
      cpuSecondsDuring: report.cpuSecondsDuring,
    });
    return {
      transport,
      bytes: received.report.bytes,
      segmentBytes: options.segmentBytes,
      segments: received.report.segments,
      seconds,
      sha256: received.report.sha256,
      sender: worker(sent),
      receiver: worker(received.report),
    };
  } finally {
    await stopChildren(children, 2_000);
  }
}
