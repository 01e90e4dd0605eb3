/**
 * A stand-in for Entra ID's v2.0 token endpoint
 * (login.microsoftonline.com/<tenant>/oauth2/v2.0/token): Microsoft ships no
 * local Entra ID server (Azurite emulates storage only and issues no tokens),
 * so this small real server on loopback takes the client-credentials grant as
 * Entra does. It knows service principals (addPrincipal), checks the tenant in
 * the path, client_id, client_secret and that the scope is one resource's
 * `/.default` the principal may have, and issues random tokens with
 * expires_in. Wrong secrets get 401 invalid_client, as Entra answers
 * (AADSTS7000215). HTTPS by default, its certificate signed by a CA of its
 * own (test/support/certs.ts); the daemon trusts it through NODE_EXTRA_CA_CERTS.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { keyAndCsr, selfSignedCa, signCsr } from "./certs.js";

export interface TestPrincipal {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** The scopes it may be issued tokens for. */
  scopes: string[];
}

export interface EntraGrant {
  tenantId: string;
  clientId: string;
  scope: string;
  token: string;
}

export interface EntraServer {
  /** https://127.0.0.1:PORT (http:// when started without TLS): the authority host. */
  readonly authorityHost: string;
  /** The CA file to trust (NODE_EXTRA_CA_CERTS); "" without TLS. */
  readonly caFile: string;
  /** Token requests received (any outcome). */
  readonly requests: number;
  /** Every token issued, in order. */
  readonly grants: EntraGrant[];
  /** Every refusal's reason. */
  readonly refusals: string[];
  /** Lifetime of the tokens issued (seconds). */
  expiresIn: number;
  addPrincipal(scopes: string[]): TestPrincipal;
  stop(): Promise<void>;
}

const TOKEN_PATH = /^\/([^/]+)\/oauth2\/v2\.0\/token$/;

export async function startEntraServer(opts: { pkiDir?: string } = {}): Promise<EntraServer> {
  const principals = new Map<string, TestPrincipal>();
  const grants: EntraGrant[] = [];
  const refusals: string[] = [];
  const state = { expiresIn: 3599, requests: 0 };

  const refuse = (res: http.ServerResponse, status: number, error: string, why: string) => {
    refusals.push(why);
    // Entra's descriptions quote the client id; the daemon must not pass them on.
    const body = JSON.stringify({ error, error_description: `AADSTS: ${why}` });
    res.writeHead(status, { "content-type": "application/json" }).end(body);
  };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      state.requests++;
      const m = TOKEN_PATH.exec(req.url ?? "");
      if (req.method !== "POST" || m === null) return refuse(res, 404, "not_found", "path");
      if (req.headers["content-type"] !== "application/x-www-form-urlencoded") {
        return refuse(res, 400, "invalid_request", "content-type");
      }
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      if (form.get("grant_type") !== "client_credentials") {
        return refuse(res, 400, "unsupported_grant_type", "grant_type");
      }
      const tenantId = decodeURIComponent(m[1] ?? "");
      const clientId = form.get("client_id") ?? "";
      const p = principals.get(clientId);
      if (p === undefined) return refuse(res, 400, "unauthorized_client", `client ${clientId}`);
      if (p.tenantId !== tenantId) return refuse(res, 400, "invalid_request", "tenant");
      if (form.get("client_secret") !== p.clientSecret) {
        return refuse(res, 401, "invalid_client", `secret for ${clientId}`);
      }
      const scope = form.get("scope") ?? "";
      if (!scope.endsWith("/.default") || scope.includes(" ") || !p.scopes.includes(scope)) {
        return refuse(res, 400, "invalid_scope", "scope");
      }
      const token = `eyJ0eXAiOiJKV1Qi.stand-in.${randomBytes(24).toString("base64url")}`;
      grants.push({ tenantId, clientId, scope, token });
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          token_type: "Bearer",
          expires_in: state.expiresIn,
          ext_expires_in: state.expiresIn,
          access_token: token,
        }),
      );
    });
  };

  let caFile = "";
  let server: http.Server | https.Server;
  if (opts.pkiDir !== undefined) {
    const dir = opts.pkiDir;
    await selfSignedCa(dir, "entra-ca", "credbroker Entra stand-in CA");
    await keyAndCsr(dir, "entra", "/CN=localhost");
    await signCsr(
      dir,
      "entra",
      "entra-ca",
      "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
      3,
    );
    caFile = path.join(dir, "entra-ca.crt");
    server = https.createServer(
      {
        cert: await readFile(path.join(dir, "entra.crt")),
        key: await readFile(path.join(dir, "entra.key")),
      },
      handler,
    );
  } else {
    server = http.createServer(handler);
  }
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const authorityHost = `${opts.pkiDir !== undefined ? "https" : "http"}://127.0.0.1:${port}`;

  return {
    authorityHost,
    caFile,
    grants,
    refusals,
    get requests() {
      return state.requests;
    },
    get expiresIn() {
      return state.expiresIn;
    },
    set expiresIn(v: number) {
      state.expiresIn = v;
    },
    addPrincipal(scopes) {
      const p: TestPrincipal = {
        tenantId: randomUUID(),
        clientId: randomUUID(),
        clientSecret: `Q~${randomBytes(27).toString("base64url")}`,
        scopes,
      };
      principals.set(p.clientId, p);
      return p;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
