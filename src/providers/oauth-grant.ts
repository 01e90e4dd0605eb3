import { DomainError } from "../core/errors.js";

/** A token answer is a few hundred bytes (an Entra ID JWT a few KB); more is refused unread. */
const MAX_ANSWER_BYTES = 64 * 1024;

export interface GrantedToken {
  accessToken: string;
  expiresInSeconds: number;
}

/**
 * One OAuth 2.0 token request (RFC 6749 section 4): `form` posted to
 * `endpoint`, no redirects, within `timeoutMs`, the answer read up to 64 KiB.
 * Errors name `label`, the endpoint's status and its OAuth error code (when
 * it has the shape of one), never the answer's text nor any form value:
 * unreachable or 5xx is unavailable, any other refusal failed_precondition.
 */
export async function postTokenForm(
  endpoint: URL | string,
  form: Record<string, string>,
  timeoutMs: number,
  label: string,
): Promise<GrantedToken> {
  let res: Response;
  try {
    res = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams(form).toString(),
      redirect: "error",
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new DomainError("unavailable", `${label} unreachable`, { cause: err });
  }
  const body = await boundedJson(res);
  if (!res.ok) {
    const code = oauthError(body);
    const detail = `${label} answered ${res.status}${code ? ` (${code})` : ""}`;
    throw new DomainError(res.status >= 500 ? "unavailable" : "failed_precondition", detail);
  }
  const token = field(body, "access_token");
  const expiresIn = seconds(field(body, "expires_in"));
  if (typeof token !== "string" || token === "" || expiresIn === undefined) {
    throw new DomainError("unavailable", `${label} answered without a token`);
  }
  return { accessToken: token, expiresInSeconds: expiresIn };
}

/** A positive expires_in: a number, or digits (some token endpoints send a string). */
function seconds(value: unknown): number | undefined {
  const n = typeof value === "string" && /^\d{1,9}$/.test(value) ? Number(value) : value;
  return typeof n === "number" && Number.isFinite(n) && n > 0 ? n : undefined;
}

/** The JSON answer, or undefined when it is too large, not JSON or cut off. */
export async function boundedJson(res: Response): Promise<unknown> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MAX_ANSWER_BYTES || res.body === null) {
    await res.body?.cancel();
    return undefined;
  }
  const chunks: Uint8Array[] = [];
  let seen = 0;
  try {
    for await (const chunk of res.body) {
      seen += chunk.length;
      if (seen > MAX_ANSWER_BYTES) return undefined;
      chunks.push(chunk);
    }
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return undefined;
  }
}

function field(body: unknown, name: string): unknown {
  return typeof body === "object" && body !== null
    ? (body as Record<string, unknown>)[name]
    : undefined;
}

/** The OAuth `error` code when it has the shape of one (never free text). */
export function oauthError(body: unknown): string | undefined {
  const code = field(body, "error");
  return typeof code === "string" && /^[a-z_]{1,64}$/.test(code) ? code : undefined;
}
