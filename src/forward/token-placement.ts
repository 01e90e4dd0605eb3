import { type Token, TokenPlacement } from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../core/errors.js";
import { percentDecode, queryParams } from "../core/raw-url.js";

/** A token put on a request: what to add, and every form of the secret that leaves. */
export interface PlacedToken {
  header: [name: string, value: string] | undefined;
  /** The query with the token's parameter appended (QUERY), else as given. */
  query: string;
  /** The token and each encoding of it that was sent: what redaction looks for. */
  sentForms: string[];
}

/**
 * Applies `token` as its placement says. The caller's headers and query may
 * not name what the token sets (invalid_argument naming the rule): a second
 * Authorization or api_key beside the broker's would be read by servers that
 * take the first. Pure.
 */
export function placeToken(
  token: Token,
  callerHeaders: readonly [string, string][],
  query: string,
): PlacedToken {
  const t = token.token;
  const taken = (name: string) =>
    callerHeaders.some(([n]) => n.toLowerCase() === name.toLowerCase());
  switch (token.placement) {
    case TokenPlacement.HEADER: {
      if (taken(token.headerName)) {
        refuse("headers: the credential's token header is set by the broker");
      }
      return { header: [token.headerName, `${token.prefix}${t}`], query, sentForms: [t] };
    }
    case TokenPlacement.QUERY: {
      if (queryParams(query).some(([k]) => percentDecode(k) === token.queryName)) {
        refuse("url: the credential's token query parameter is set by the broker");
      }
      const encoded = encodeURIComponent(t);
      const param = `${encodeURIComponent(token.queryName)}=${encoded}`;
      return {
        header: undefined,
        query: query === "" ? param : `${query}&${param}`,
        sentForms: [t, encoded],
      };
    }
    case TokenPlacement.QUERY_STRING: {
      // A SAS: appended as it is. Its parameters are the broker's, so the caller's URL may not name them.
      const params = queryParams(t);
      const names = new Set(params.map(([k]) => k.toLowerCase()));
      if (queryParams(query).some(([k]) => names.has(k.toLowerCase()))) {
        refuse("url: a query parameter of the credential's token is set by the broker");
      }
      return {
        header: undefined,
        query: query === "" ? t : `${query}&${t}`,
        sentForms: queryStringForms(t, params),
      };
    }
    case TokenPlacement.BASIC: {
      const basic = Buffer.from(`${token.username}:${t}`).toString("base64");
      return { header: ["authorization", `Basic ${basic}`], query, sentForms: [t, basic] };
    }
    default:
      return { header: ["authorization", `Bearer ${t}`], query, sentForms: [t] };
  }
}

/** Parameter values this long are secret-shaped; shorter ones (sp=r, sr=b) would redact unrelated text. */
const MIN_REDACTED_VALUE = 16;

/**
 * The token, and each of its parameter values that can be a secret (the
 * signature `sig` always), as written and decoded: an upstream may echo
 * either.
 */
function queryStringForms(token: string, params: [string, string][]): string[] {
  const forms = new Set([token]);
  const raw = new Map(
    token.split("&").map((part) => {
      const eq = part.indexOf("=");
      return [percentDecode(eq < 0 ? part : part.slice(0, eq)), eq < 0 ? "" : part.slice(eq + 1)];
    }),
  );
  for (const [name, value] of params) {
    if (value === "" || (name !== "sig" && value.length < MIN_REDACTED_VALUE)) continue;
    forms.add(value);
    const written = raw.get(name);
    if (written !== undefined && written !== "") forms.add(written);
  }
  return [...forms];
}

function refuse(message: string): never {
  throw new DomainError("invalid_argument", message);
}
