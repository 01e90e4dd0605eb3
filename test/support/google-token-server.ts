/**
 * A stand-in for Google's OAuth 2.0 token endpoint (oauth2.googleapis.com/token):
 * Google has no local server, so this small real HTTP server on loopback takes
 * the JWT-bearer grant as Google does. It verifies the RS256 assertion with the
 * service account's public key and checks aud (its own URL), iss (the key's
 * client_email), scope and iat/exp before issuing a random token. Plain http:
 * credbroker allows a token_uri over http only to a loopback host.
 */
import { generateKeyPairSync, type KeyObject, randomBytes, verify } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface TestServiceAccount {
  /** The JSON key file, as Google issues it (token_uri pointing at the stand-in). */
  keyJson: string;
  clientEmail: string;
  privateKeyId: string;
  projectId: string;
  /** The PEM private key inside keyJson (to look for leaks). */
  privateKeyPem: string;
}

export interface Grant {
  iss: string;
  scopes: string[];
  token: string;
}

export interface GoogleTokenServer {
  /** The token_uri keys name. */
  readonly tokenUri: string;
  /** Every token issued, in order. */
  readonly grants: Grant[];
  /** Every refusal: the reason (a test reads them). */
  readonly refusals: string[];
  /** A new service account whose key the server trusts. */
  addServiceAccount(name: string, projectId?: string): TestServiceAccount;
  /** Lifetime of the tokens issued (seconds). */
  expiresIn: number;
  stop(): Promise<void>;
}

export async function startGoogleTokenServer(): Promise<GoogleTokenServer> {
  const keys = new Map<string, KeyObject>();
  const grants: Grant[] = [];
  const refusals: string[] = [];
  const server = http.createServer();
  let tokenUri = "";
  const state = { expiresIn: 3600 };

  const refuse = (res: http.ServerResponse, status: number, error: string, why: string) => {
    refusals.push(why);
    const body = JSON.stringify({ error, error_description: why });
    res.writeHead(status, { "content-type": "application/json" }).end(body);
  };

  server.on("request", (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/token")
        return refuse(res, 404, "not_found", "path");
      if (req.headers["content-type"] !== "application/x-www-form-urlencoded") {
        return refuse(res, 400, "invalid_request", "content-type");
      }
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse(res, 400, "unsupported_grant_type", "grant_type");
      }
      const why = checkAssertion(form.get("assertion") ?? "", keys, tokenUri);
      if (typeof why === "string") return refuse(res, 400, "invalid_grant", why);
      const token = `ya29.stand-in.${randomBytes(24).toString("base64url")}`;
      grants.push({ iss: why.iss, scopes: why.scopes, token });
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          access_token: token,
          expires_in: state.expiresIn,
          token_type: "Bearer",
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  tokenUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;

  return {
    tokenUri,
    grants,
    refusals,
    get expiresIn() {
      return state.expiresIn;
    },
    set expiresIn(v: number) {
      state.expiresIn = v;
    },
    addServiceAccount(name, projectId = "credbroker-test") {
      const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      const clientEmail = `${name}@${projectId}.iam.gserviceaccount.com`;
      const privateKeyId = randomBytes(20).toString("hex");
      keys.set(clientEmail, publicKey);
      const privateKeyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
      const keyJson = JSON.stringify({
        type: "service_account",
        project_id: projectId,
        private_key_id: privateKeyId,
        private_key: privateKeyPem,
        client_email: clientEmail,
        client_id: "1".repeat(21),
        auth_uri: "https://accounts.google.com/o/oauth2/auth",
        token_uri: tokenUri,
      });
      return { keyJson, clientEmail, privateKeyId, projectId, privateKeyPem };
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The assertion's claims when it verifies, else why not. */
function checkAssertion(
  jwt: string,
  keys: Map<string, KeyObject>,
  audience: string,
): { iss: string; scopes: string[] } | string {
  const parts = jwt.split(".");
  if (parts.length !== 3) return "not a JWT";
  const [h, c, s] = parts as [string, string, string];
  let header: Record<string, unknown>;
  let claims: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(h, "base64url").toString());
    claims = JSON.parse(Buffer.from(c, "base64url").toString());
  } catch {
    return "not JSON";
  }
  if (header.alg !== "RS256") return "alg";
  const iss = claims.iss;
  const key = typeof iss === "string" ? keys.get(iss) : undefined;
  if (key === undefined || typeof iss !== "string") return "iss";
  if (!verify("sha256", Buffer.from(`${h}.${c}`), key, Buffer.from(s, "base64url"))) {
    return "signature";
  }
  if (claims.aud !== audience) return "aud";
  const now = Math.floor(Date.now() / 1000);
  const { iat, exp } = claims;
  if (typeof iat !== "number" || typeof exp !== "number") return "iat/exp";
  if (iat > now + 60 || exp <= now || exp - iat > 3600) return "exp";
  if (typeof claims.scope !== "string" || claims.scope === "") return "scope";
  return { iss, scopes: claims.scope.split(" ") };
}
