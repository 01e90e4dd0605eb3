import { type Credential, TokenPlacement } from "../../../gen/credbroker/v1/credential_pb.js";
import type { Rule } from "../check-rule.js";

const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A DNS name of two or more labels, e.g. contoso.onmicrosoft.com. */
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;
const SAS_PARAM = /^[a-z]{2,8}=[A-Za-z0-9%._~:+\-,/=]*$/;
/** The parameters every SAS carries: version, expiry, permissions, signature. */
const SAS_REQUIRED = ["sv", "se", "sp", "sig"] as const;

/** Azure's shape rules: storage account names and keys, SAS tokens, service principals. */
export function azureRules(c: Credential): Rule[] {
  switch (c.kind.case) {
    case "accessKey": {
      const k = c.kind.value;
      return [
        [
          "access_key.access_key_id.azure_account",
          ACCOUNT_NAME.test(k.accessKeyId),
          "access_key.access_key_id: an Azure storage account name, 3-24 lower-case letters and digits",
        ],
        [
          "access_key.secret_access_key.azure_key",
          isAccountKey(k.secretAccessKey),
          "access_key.secret_access_key: an Azure account key, base64 of 64 bytes",
        ],
        [
          "access_key.session_token.azure",
          k.sessionToken === undefined,
          "access_key.session_token: not used by Azure account keys",
        ],
      ];
    }
    case "token":
      if (c.kind.value.placement !== TokenPlacement.QUERY_STRING) return [];
      return [
        [
          "token.token.sas",
          parseSas(c.kind.value.token) !== undefined,
          "token.token: with TOKEN_PLACEMENT_QUERY_STRING, a SAS query string without '?' (sv, se, sp and sig at least)",
        ],
      ];
    case "servicePrincipal": {
      const p = c.kind.value;
      return [
        [
          "service_principal.tenant_id.format",
          GUID.test(p.tenantId) || DOMAIN.test(p.tenantId),
          "service_principal.tenant_id: a GUID or a domain name",
        ],
        [
          "service_principal.client_id.format",
          GUID.test(p.clientId),
          "service_principal.client_id: a GUID",
        ],
        [
          "service_principal.client_secret.present",
          p.clientSecret.length > 0 && p.clientSecret.length <= 1024,
          "service_principal.client_secret: required, at most 1024 characters",
        ],
      ];
    }
    default:
      return [];
  }
}

function isAccountKey(key: string): boolean {
  return key.length === 88 && BASE64.test(key) && Buffer.from(key, "base64").length === 64;
}

/** A SAS read: its parameters, values decoded. */
export type Sas = ReadonlyMap<string, string>;

/** The parameters of a SAS query string (no '?'), or undefined when it is not one. */
export function parseSas(token: string): Sas | undefined {
  if (token === "" || token.length > 8192 || token.startsWith("?")) return undefined;
  const params = new Map<string, string>();
  for (const part of token.split("&")) {
    if (!SAS_PARAM.test(part)) return undefined;
    const eq = part.indexOf("=");
    const name = part.slice(0, eq);
    if (params.has(name)) return undefined;
    let value: string;
    try {
      value = decodeURIComponent(part.slice(eq + 1));
    } catch {
      return undefined;
    }
    params.set(name, value);
  }
  if (!SAS_REQUIRED.every((n) => params.has(n))) return undefined;
  const se = Date.parse(params.get("se") ?? "");
  return Number.isNaN(se) ? undefined : params;
}

/**
 * VerifyCredential's checks of a SAS token: its expiry (se; past it, an
 * error) and its permissions (sp). Neither value is a secret; sig is never
 * shown.
 */
export function sasVerifyRules(c: Credential, now: Date): Rule[] {
  if (c.kind.case !== "token" || c.kind.value.placement !== TokenPlacement.QUERY_STRING) return [];
  const sas = parseSas(c.kind.value.token);
  if (sas === undefined) return [];
  const se = new Date(Date.parse(sas.get("se") ?? ""));
  const sp = sas.get("sp") ?? "";
  return [
    [
      "token.sas.se",
      se.getTime() > now.getTime(),
      se.getTime() > now.getTime()
        ? `token.se: the SAS expires at ${se.toISOString()}`
        : `token.se: the SAS expired at ${se.toISOString()}`,
    ],
    [
      "token.sas.sp",
      /^[racwdxltmeopifyn]+$/.test(sp),
      /^[racwdxltmeopifyn]+$/.test(sp)
        ? `token.sp: the SAS grants ${sp}`
        : "token.sp: not a list of SAS permission letters",
    ],
  ];
}
