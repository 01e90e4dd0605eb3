/** What a command may touch: its streams and environment, passed in (tests give their own). */
export interface Io {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => void };
  out(text: string): void;
  err(text: string): void;
  readonly env: NodeJS.ProcessEnv;
}

/** The process's own streams. */
export function processIo(): Io {
  return {
    stdin: process.stdin,
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    env: process.env,
  };
}
