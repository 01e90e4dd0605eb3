import { parseArgs } from "node:util";

/** `--port N` (1-65535) from argv, else `fallback`; a bad value exits 2 naming the flag. */
export function portArg(command: string, fallback: number): number {
  let text: string | undefined;
  try {
    text = parseArgs({ options: { port: { type: "string" } }, strict: true }).values.port;
  } catch {
    usage(command);
  }
  if (text === undefined) return fallback;
  const port = /^\d{1,5}$/.test(text) ? Number(text) : 0;
  if (port < 1 || port > 65535) usage(command);
  return port;
}

function usage(command: string): never {
  console.error(`${command}: usage: npm run ${command} [-- --port N]  (N: 1-65535)`);
  process.exit(2);
}

/** Runs `start`; when it fails (the port is taken, python3-swift is missing), says so in one message and exits 1. */
export async function startOrExit<T>(command: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    console.error(`${command}: cannot start: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}

/**
 * Keeps the process in the foreground until SIGINT (Ctrl-C) or SIGTERM, then
 * runs `stop` once and exits 0; a second signal exits at once.
 */
export function runUntilSignal(command: string, stop: () => Promise<void>): void {
  const keepAlive = setInterval(() => {}, 1 << 30);
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    console.log(`${command}: ${signal}, stopping`);
    stop().then(
      () => {
        clearInterval(keepAlive);
        process.exit(0);
      },
      (err: unknown) => {
        console.error(`${command}: stop failed: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}
