import { type DestinationStream, type Logger, pino } from "pino";
import pretty from "pino-pretty";
import type { ServeConfig } from "../config/serve-config.js";

/** Defence in depth: nothing should log these, and if it does they are masked. */
export const REDACTED_PATHS = ["*.secretAccessKey", "*.sessionToken", "*.token", "*.authorization"];

/** JSON for machines, or one readable line per entry for a person at a terminal. */
export type LogFormat = "json" | "pretty";

/** --log-format when given, else pretty on a terminal and JSON anywhere else (a pipe, a file, journald). */
export function logFormatFor(config: Pick<ServeConfig, "logFormat">, isTTY: boolean): LogFormat {
  return config.logFormat ?? (isTTY ? "pretty" : "json");
}

/**
 * The daemon's logger, writing to `fd` (stdout). Pretty output is made from
 * the JSON line pino has already redacted, so it can show nothing the JSON
 * would not. `into` replaces the fd (tests).
 */
export function createLogger(
  config: Pick<ServeConfig, "logLevel" | "logFormat">,
  {
    fd = 1,
    isTTY,
    colour = isTTY,
    into,
  }: {
    fd?: number;
    isTTY: boolean;
    colour?: boolean;
    into?: NodeJS.WritableStream;
  },
): Logger {
  const options = { level: config.logLevel, base: { pid: process.pid }, redact: REDACTED_PATHS };
  const destination: DestinationStream =
    logFormatFor(config, isTTY) === "pretty"
      ? pretty({
          destination: into ?? fd,
          sync: true,
          colorize: colour,
          translateTime: "SYS:yyyy-mm-dd HH:MM:ss.l",
          ignore: "pid,hostname",
          singleLine: true,
        })
      : (into ?? pino.destination({ fd, sync: true }));
  return pino(options, destination);
}
