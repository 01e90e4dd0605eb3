/** What a command may touch: its streams and environment, passed in (tests give their own). */
export interface Io {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => void };
  out(text: string): void;
  /** Raw bytes to stdout (a fetched body); absent, they are written as UTF-8 text through `out`. */
  outBytes?(bytes: Uint8Array): void;
  err(text: string): void;
  /** Standard error is a terminal (progress meters are drawn only there). */
  readonly errIsTTY?: boolean;
  readonly env: NodeJS.ProcessEnv;
}

/** The process's own streams. */
export function processIo(): Io {
  return {
    stdin: process.stdin,
    out: (t) => process.stdout.write(t),
    outBytes: (b) => process.stdout.write(b),
    err: (t) => process.stderr.write(t),
    errIsTTY: process.stderr.isTTY === true,
    env: process.env,
  };
}
