import { createPrivateKey } from "node:crypto";
import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import type { Rule } from "../check-rule.js";

/**
 * Cloud Storage HMAC access ids as Google documents them: "GOOG" and 20
 * upper-case letters or digits for a user account, "GOOG1E…" (61 in all)
 * for a service account.
 */
const HMAC_ACCESS_ID = /^GOOG[A-Z0-9]{20,57}$/;
const EMAIL = /^[^\s@]{1,64}@[A-Za-z0-9.-]{1,253}$/;
/** A key file is about 2.3 KB; this bounds what is parsed. */
export const MAX_KEY_JSON = 16 * 1024;
/**
 * token_uri: https, or plain http to 127.0.0.1 only (a local token endpoint
 * in tests and on one host; never a network hop in the clear).
 */
const TOKEN_URI = /^(https:\/\/[^\s/?#]+|http:\/\/127\.0\.0\.1(:\d{1,5})?)(\/[^\s#]*)?$/;

/** What the broker reads from a service account key file. */
export interface ServiceAccountKeyFile {
  clientEmail: string;
  privateKey: string;
  privateKeyId: string;
  projectId: string;
  tokenUri: string;
}

export type KeyFileReading =
  | { ok: true; key: ServiceAccountKeyFile }
  | { ok: false; check: string; message: string };

function field(o: Record<string, unknown>, name: string): string {
  const v = o[name];
  return typeof v === "string" ? v : "";
}

/** Parses and checks a key file; messages name the field, never its value. */
export function readServiceAccountKey(json: string): KeyFileReading {
  const fail = (check: string, message: string): KeyFileReading => ({
    ok: false,
    check: `service_account.key_json.${check}`,
    message: `service_account.key_json: ${message}`,
  });
  if (json.length === 0 || json.length > MAX_KEY_JSON) {
    return fail("format", `required, a JSON key file of at most ${MAX_KEY_JSON} characters`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return fail("format", "not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return fail("format", "not a JSON object");
  }
  const o = parsed as Record<string, unknown>;
  if (o.type !== "service_account") return fail("type", 'type must be "service_account"');
  const key: ServiceAccountKeyFile = {
    clientEmail: field(o, "client_email"),
    privateKey: field(o, "private_key"),
    privateKeyId: field(o, "private_key_id"),
    projectId: field(o, "project_id"),
    tokenUri: field(o, "token_uri") || "https://oauth2.googleapis.com/token",
  };
  if (!EMAIL.test(key.clientEmail)) return fail("client_email", "client_email must be an email");
  if (!/^[0-9a-f]{0,128}$/i.test(key.privateKeyId)) {
    return fail("private_key_id", "private_key_id must be hex");
  }
  if (key.projectId.length > 128) return fail("project_id", "project_id: at most 128 characters");
  if (!TOKEN_URI.test(key.tokenUri) || key.tokenUri.length > 2048) {
    return fail("token_uri", "token_uri must be an https URL (or http://127.0.0.1[:port]/…)");
  }
  try {
    const loaded = createPrivateKey({ key: key.privateKey, format: "pem" });
    if (loaded.asymmetricKeyType !== "rsa") {
      return fail("private_key", "private_key must be an RSA key");
    }
  } catch {
    return fail("private_key", "private_key must be a PEM RSA private key that loads");
  }
  return { ok: true, key };
}

/** Google Cloud's shape rules: HMAC key ids, service account key files. */
export function gcpRules(c: Credential): Rule[] {
  switch (c.kind.case) {
    case "accessKey":
      return [
        [
          "access_key.access_key_id.gcp_shape",
          HMAC_ACCESS_ID.test(c.kind.value.accessKeyId),
          "access_key.access_key_id: a Cloud Storage HMAC access id (GOOG and 20-57 upper-case letters or digits, e.g. GOOG1E…)",
        ],
      ];
    case "serviceAccount": {
      const read = readServiceAccountKey(c.kind.value.keyJson);
      return [
        read.ok
          ? ["service_account.key_json.format", true, "service_account.key_json: a key file"]
          : [read.check, false, read.message],
      ];
    }
    default:
      return [];
  }
}

/** Fills a key file's public fields (client_email, private_key_id, project_id) from it. */
export function describeServiceAccount(c: Credential): void {
  if (c.kind.case !== "serviceAccount" || c.kind.value.keyJson === "") return;
  const read = readServiceAccountKey(c.kind.value.keyJson);
  if (!read.ok) return;
  c.kind.value.clientEmail = read.key.clientEmail;
  c.kind.value.privateKeyId = read.key.privateKeyId;
  c.kind.value.projectId = read.key.projectId;
}
