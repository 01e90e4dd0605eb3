import { Code } from "@connectrpc/connect";

/**
 * Exit codes, stable for scripts (documented in docs/CLI.md):
 * 0 ok · 1 other error · 2 usage (bad flags) or an invalid config (config check; serve refusing
 * its config before it starts) · 3 unauthenticated ·
 * 4 not found · 5 invalid input · 6 unavailable (daemon not reachable) ·
 * 7 already exists · 8 conflict (stale etag, failed precondition) · 9 permission denied ·
 * 10 partly done (`cred import --bulk`: some rows were not imported, each reported;
 * `repair`: something was lost) · 22 `fetch --fail`: the upstream answered 400 or more (curl's code).
 */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  unauthenticated: 3,
  notFound: 4,
  invalidInput: 5,
  unavailable: 6,
  alreadyExists: 7,
  conflict: 8,
  permissionDenied: 9,
  partial: 10,
  upstreamFailed: 22,
} as const;

/** The exit code for an RPC that failed with `code`. */
export function exitCodeFor(code: Code): number {
  switch (code) {
    case Code.Unauthenticated:
      return EXIT.unauthenticated;
    case Code.NotFound:
      return EXIT.notFound;
    case Code.InvalidArgument:
    case Code.OutOfRange:
      return EXIT.invalidInput;
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return EXIT.unavailable;
    case Code.AlreadyExists:
      return EXIT.alreadyExists;
    case Code.Aborted:
    case Code.FailedPrecondition:
      return EXIT.conflict;
    case Code.PermissionDenied:
      return EXIT.permissionDenied;
    default:
      return EXIT.error;
  }
}
