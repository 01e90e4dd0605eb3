/** What a command may touch: its streams and environment, passed in (tests give their own). */
export interface Io {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => void };
  out(text: string): void;
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
    err: (t) => process.stderr.write(t),
    errIsTTY: process.stderr.isTTY === true,
    env: process.env,
  };
}
