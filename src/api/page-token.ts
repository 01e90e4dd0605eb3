import { DomainError } from "../core/errors.js";

/** What a page token remembers: the query it belongs to and where the page ended. */
export interface PageCursor {
  namespace: string;
  provider: number;
  after: string;
}

/** Opaque to callers: base64url of a small JSON object. */
export function encodePageToken(cursor: PageCursor): string {
  return Buffer.from(
    JSON.stringify({ n: cursor.namespace, p: cursor.provider, a: cursor.after }),
  ).toString("base64url");
}

/**
 * The cursor in `token`, which must come from a listing of the same namespace
 * and provider; "" is the first page.
 */
export function decodePageToken(token: string, namespace: string, provider: number): string {
  if (token === "") return "";
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    parsed = undefined;
  }
  const { n, p, a } = (parsed ?? {}) as Record<string, unknown>;
  if (typeof n !== "string" || typeof p !== "number" || typeof a !== "string") {
    throw new DomainError("invalid_argument", "page_token: not a token this server issued");
  }
  if (n !== namespace || p !== provider) {
    throw new DomainError(
      "invalid_argument",
      "page_token: issued for a different namespace or provider; start again without it",
    );
  }
  return a;
}
