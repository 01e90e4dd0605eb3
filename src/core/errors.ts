/**
 * Domain errors: a closed set of stable codes (named after the gRPC codes they
 * become) and a message that is safe to show a caller. A secret never goes into
 * a message; internal detail goes into `cause`, which is logged, never sent.
 */
export type ErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "failed_precondition"
  | "aborted"
  | "deadline_exceeded"
  | "unauthenticated"
  | "resource_exhausted"
  | "unimplemented"
  | "unavailable"
  | "data_loss"
  | "internal";

export class DomainError extends Error {
  override readonly name = "DomainError";

  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True when `err` is a DomainError with the given code. */
export function isDomainError(err: unknown, code?: ErrorCode): err is DomainError {
  return err instanceof DomainError && (code === undefined || err.code === code);
}

/**
 * A refusal answered as another error: the caller gets `code` and `message`
 * exactly as that error's (not_found for a credential outside the caller's
 * namespaces, so existence does not leak), while the audit line records a
 * denial with `auditReason`, the rule that refused it. Only the audit log
 * reads `auditReason`; it never reaches the caller.
 */
export class ConcealedDenial extends DomainError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly auditReason: string,
  ) {
    super(code, message);
  }
}
