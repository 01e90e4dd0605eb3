import { DomainError, type ErrorCode } from "../../core/errors.js";

/** STS error codes that mean "not now" although STS sends them as 4xx. */
const TRANSIENT = new Set([
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
  "IDPCommunicationError",
  "RequestTimeout",
  "RequestTimeoutException",
]);

/** The parts of an @aws-sdk error this module reads. */
interface SdkError {
  name?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/** Messages are cut to one line and this many characters. */
const MAX_MESSAGE = 300;

/**
 * The domain code of a failed STS call. AccessDenied is `permission_denied`.
 * No answer (refused, reset, timed out), throttling and 5xx are
 * `unavailable`: retrying later may work. Any other refusal (the source key
 * invalid or expired, a parameter STS rejects, a disabled region) is
 * `failed_precondition`: the stored credential must change first.
 */
export function stsErrorCode(err: unknown): ErrorCode {
  const e = (typeof err === "object" && err !== null ? err : {}) as SdkError;
  const name = typeof e.name === "string" ? e.name : "";
  if (name === "AccessDenied" || name === "AccessDeniedException") return "permission_denied";
  const status = e.$metadata?.httpStatusCode;
  if (typeof status !== "number" || status >= 500 || status === 429 || TRANSIENT.has(name)) {
    return "unavailable";
  }
  return "failed_precondition";
}

/**
 * The error a failed STS call becomes: `STS <Action>: <Code>: <STS's message>`.
 * The message is cut at its first line (an STS signature error quotes the
 * canonical request, which names the session token) and the caller's secrets
 * are removed from it. The SDK's own error is not kept as the cause, since a
 * logged cause would carry the uncut message; the cause is a clean copy.
 */
export function stsError(
  action: string,
  err: unknown,
  secrets: readonly (string | undefined)[],
): DomainError {
  const e = (typeof err === "object" && err !== null ? err : {}) as SdkError;
  const name = typeof e.name === "string" ? e.name : "Error";
  let text = (typeof e.message === "string" ? e.message : String(err)).split("\n")[0] ?? "";
  for (const secret of secrets) {
    if (secret) text = text.replaceAll(secret, "[redacted]");
  }
  if (text.length > MAX_MESSAGE) text = `${text.slice(0, MAX_MESSAGE)}…`;
  const status = e.$metadata?.httpStatusCode;
  const message = `STS ${action}: ${name}: ${text || "no message"}`;
  const cause = Object.assign(new Error(message), {
    name,
    ...(typeof status === "number" ? { httpStatusCode: status } : {}),
  });
  return new DomainError(stsErrorCode(err), message, { cause });
}

/** STS gave no answer within the gateway's bound (--sts-timeout). */
export function stsTimeout(action: string, timeoutMs: number): DomainError {
  return new DomainError(
    "unavailable",
    `STS ${action}: no answer within ${timeoutMs / 1000} s (--sts-timeout); STS is down or slow`,
  );
}
