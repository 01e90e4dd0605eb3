import { DomainError } from "../core/errors.js";

/**
 * One thing wrong with the daemon's config. In the file: its line and the
 * path of the key (`log_level`, `credentials[1].colour`); from a flag or the
 * environment: the message names the flag (`--listen: …`).
 */
export interface ConfigProblem {
  file?: string | undefined;
  line?: number | undefined;
  column?: number | undefined;
  path?: string | undefined;
  message: string;
}

/** `FILE:LINE: path: message`, or the bare message for a flag's or variable's problem. */
export function renderProblem(p: ConfigProblem): string {
  if (p.file !== undefined) {
    const at = `${p.file}:${p.line ?? 1}${p.column === undefined ? "" : `:${p.column}`}`;
    return p.path === undefined ? `${at}: ${p.message}` : `${at}: ${p.path}: ${p.message}`;
  }
  return p.path === undefined ? p.message : `${p.path}: ${p.message}`;
}

/** The file's problems in line order (a user fixes them in one pass), then the flags' and environment's. */
export function inLineOrder(problems: readonly ConfigProblem[]): ConfigProblem[] {
  const inFile = problems.filter((p) => p.file !== undefined);
  const rest = problems.filter((p) => p.file === undefined);
  return [...inFile.sort((a, b) => (a.line ?? 1) - (b.line ?? 1)), ...rest];
}

/** The config is refused: every problem found, one per line of the message. */
export class ConfigInvalid extends DomainError {
  readonly problems: ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    const sorted = inLineOrder(problems);
    super("invalid_argument", sorted.map(renderProblem).join("\n"));
    this.problems = sorted;
  }
}

/**
 * Runs `check`; a DomainError it throws becomes a problem (its message) and
 * `fallback` is returned, so the checks after it still run.
 */
export function attempt<T>(problems: DomainError[], fallback: T, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (!(err instanceof DomainError)) throw err;
    problems.push(err);
    return fallback;
  }
}
