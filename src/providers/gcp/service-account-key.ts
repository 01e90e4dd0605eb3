import { createPrivateKey, type KeyObject } from "node:crypto";
import { isIPv4 } from "node:net";
import { DomainError } from "../../core/errors.js";

/** Where Google's key files send the JWT-bearer grant. */
export const GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token";

/** The parts of a service account key file the JWT-bearer grant uses. */
export interface ServiceAccountKey {
  clientEmail: string;
  privateKeyId: string;
  privateKey: KeyObject;
  tokenUri: URL;
}

/**
 * Parses a key file for the grant. Messages name fields only: JSON.parse's
 * own message can quote the text, which holds the private key.
 */
export function parseServiceAccountKey(keyJson: string, who: string): ServiceAccountKey {
  const bad = (field: string) =>
    new DomainError("failed_precondition", `${who}: service_account key_json: ${field}`);
  let doc: unknown;
  try {
    doc = JSON.parse(keyJson);
  } catch {
    throw bad("is not valid JSON");
  }
  if (typeof doc !== "object" || doc === null) throw bad("is not a JSON object");
  const field = (name: string): string | undefined => {
    const v = (doc as Record<string, unknown>)[name];
    return typeof v === "string" ? v : undefined;
  };
  const clientEmail = field("client_email");
  if (clientEmail === undefined || !clientEmail.includes("@")) throw bad("client_email missing");
  const pem = field("private_key");
  if (pem === undefined) throw bad("private_key missing");
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw bad("private_key is not a PEM private key");
  }
  if (privateKey.asymmetricKeyType !== "rsa") throw bad("private_key is not an RSA key");
  return {
    clientEmail,
    privateKeyId: field("private_key_id") ?? "",
    privateKey,
    tokenUri: tokenUri(field("token_uri"), bad),
  };
}

/** client_email and project_id of a key file, for the metadata listener (not the key). */
export function keyIdentity(keyJson: string, who: string): { email: string; projectId: string } {
  const key = parseServiceAccountKey(keyJson, who);
  let projectId = "";
  try {
    const v = (JSON.parse(keyJson) as Record<string, unknown>).project_id;
    if (typeof v === "string") projectId = v;
  } catch {
    // parseServiceAccountKey has read it already.
  }
  return { email: key.clientEmail, projectId };
}

/**
 * token_uri: https anywhere, plain http only to a loopback host (a local
 * token endpoint: the assertion never crosses a network in the clear).
 */
function tokenUri(value: string | undefined, bad: (f: string) => Error): URL {
  if (value === undefined || value === "") return new URL(GOOGLE_TOKEN_URI);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad("token_uri is not a URL");
  }
  if (url.username !== "" || url.password !== "") throw bad("token_uri must not carry userinfo");
  if (url.protocol === "https:") return url;
  if (url.protocol === "http:" && loopbackHost(url.hostname)) return url;
  throw bad("token_uri must be https (or http to a loopback host)");
}

function loopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === "localhost" || h === "[::1]" || (h.startsWith("127.") && isIPv4(h));
}
