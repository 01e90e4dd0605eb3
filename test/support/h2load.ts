import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export interface H2loadRun {
  perSecond: number;
  /** Requests answered (any status). */
  answered: number;
  /** Latency percentiles, ms, from h2load's per-request log. */
  p50: number;
  p99: number;
  /** Requests answered with an HTTP status other than 2xx. */
  failed: number;
}

export interface H2loadOptions {
  /** Full URL of the procedure, e.g. http://127.0.0.1:PORT/pkg.Service/Method */
  url: string;
  /** The request body, exactly as sent (already framed for gRPC). */
  body: Uint8Array;
  headers: Record<string, string>;
  connections: number;
  /** Streams in flight per connection. */
  streams: number;
  /** How long to run (after a 1 s warm-up), or… */
  seconds?: number;
  /** …how many requests to send in all. */
  requests?: number;
}

/**
 * Drives `url` with h2load (Debian nghttp2-client): a C load generator that
 * is not itself the bottleneck, as Node clients are at a few thousand calls
 * a second. Every request is a POST of `body`; with `seconds`, a 1 s warm-up
 * is not counted.
 * gRPC errors travel in trailers under HTTP 200, so callers check a sample
 * call's status themselves and the daemon's log for failed RPCs.
 */
export async function h2load(opts: H2loadOptions): Promise<H2loadRun> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-h2load-"));
  try {
    const bodyFile = path.join(dir, "body");
    const logFile = path.join(dir, "log");
    await writeFile(bodyFile, opts.body);
    const args = [
      "--clients",
      String(opts.connections),
      "--threads",
      "1",
      "--max-concurrent-streams",
      String(opts.streams),
      ...(opts.requests === undefined
        ? ["--duration", String(opts.seconds ?? 5), "--warm-up-time", "1"]
        : ["--requests", String(opts.requests)]),
      "--data",
      bodyFile,
      "--log-file",
      logFile,
      ...Object.entries(opts.headers).flatMap(([k, v]) => ["--header", `${k}: ${v}`]),
      opts.url,
    ];
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        "h2load",
        args,
        { timeout: ((opts.seconds ?? 0) + 60) * 1000 },
        (err, stdout, stderr) =>
          err ? reject(new Error(`h2load: ${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    const rate = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1];
    if (rate === undefined) throw new Error(`h2load: no rate in its output:\n${out}`);
    const lines = (await readFile(logFile, "utf8")).trim().split("\n");
    let failed = 0;
    const micros: number[] = [];
    for (const line of lines) {
      const [, status, us] = line.split("\t");
      const code = Number(status);
      // Requests still in flight when the run ends are logged without a status (-1).
      if (!(code >= 100)) continue;
      if (code >= 300) failed++;
      micros.push(Number(us));
    }
    micros.sort((a, b) => a - b);
    const at = (q: number) =>
      (micros[Math.min(micros.length - 1, Math.floor(micros.length * q))] ?? 0) / 1000;
    return {
      perSecond: Number(rate),
      answered: micros.length,
      p50: at(0.5),
      p99: at(0.99),
      failed,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A gRPC length-prefixed message; `flags` 1 marks it compressed. */
export function grpcFrame(message: Uint8Array, flags = 0): Buffer {
  const framed = Buffer.alloc(5 + message.length);
  framed[0] = flags;
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, 5);
  return framed;
}
