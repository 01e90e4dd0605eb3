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
    case TokenPlacement.BASIC: {
      const basic = Buffer.from(`${token.username}:${t}`).toString("base64");
      return { header: ["authorization", `Basic ${basic}`], query, sentForms: [t, basic] };
    }
    default:
      return { header: ["authorization", `Bearer ${t}`], query, sentForms: [t] };
  }
}

function refuse(message: string): never {
  throw new DomainError("invalid_argument", message);
}
