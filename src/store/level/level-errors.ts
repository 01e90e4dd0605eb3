import { DomainError } from "../../core/errors.js";
import { displayName } from "../../core/names.js";

/**
 * The LevelDB error code of `err`: its cause's when it has one, since
 * abstract-level wraps the native error (LEVEL_DATABASE_NOT_OPEN around LEVEL_LOCKED).
 */
export function levelCode(err: unknown): string | undefined {
  const { code, cause } = err as { code?: unknown; cause?: { code?: unknown } };
  if (typeof cause?.code === "string" && cause.code.startsWith("LEVEL_")) return cause.code;
  return typeof code === "string" && code.startsWith("LEVEL_") ? code : undefined;
}

/** LevelDB's own message (a status like "IO error: <file>: No space left on device"). */
export function levelReason(err: unknown): string {
  const { message, cause } = err as { message?: unknown; cause?: { message?: unknown } };
  const own = typeof message === "string" ? message : String(err);
  return typeof cause?.message === "string" ? `${own}: ${cause.message}` : own;
}

/**
 * A failed LevelDB read as a DomainError: a table that does not read back
 * (checksum, bad block) is `data_loss`, a closed or failing database is
 * `unavailable`. LevelDB's status names a file, never a value.
 * DomainErrors and anything unexpected pass through unchanged.
 */
export function readError(err: unknown, what: string): unknown {
  if (err instanceof DomainError) return err;
  switch (levelCode(err)) {
    case "LEVEL_CORRUPTION":
      return new DomainError("data_loss", `${what} is damaged: ${levelReason(err)}`, {
        cause: err,
      });
    case "LEVEL_IO_ERROR":
    case "LEVEL_DATABASE_NOT_OPEN":
    case "LEVEL_ITERATOR_NOT_OPEN":
      return new DomainError("unavailable", `cannot read ${what}: ${levelReason(err)}`, {
        cause: err,
      });
    default:
      return err;
  }
}

/**
 * Names the credential in a data_loss from reading it: the sealed record
 * knows only its storage key, the caller asked for a name.
 */
export function namedDamage(err: unknown, namespace: string, name: string): unknown {
  if (!(err instanceof DomainError) || err.code !== "data_loss") return err;
  return new DomainError(
    "data_loss",
    `credential ${displayName(namespace, name)} is damaged in the store and cannot be read (${err.message}); "credbroker repair" lists what is damaged`,
    { cause: err },
  );
}
