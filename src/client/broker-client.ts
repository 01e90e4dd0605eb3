import { readFileSync } from "node:fs";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { KeyService } from "../../gen/credbroker/v1/key_service_pb.js";
import { ServerService } from "../../gen/credbroker/v1/server_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { baseUrl } from "./address.js";

export interface BrokerClientOptions {
  /** `host:port` or `http(s)://host:port`. */
  addr: string;
  /** The bearer token, or a file holding it (e.g. the daemon's admin.token). */
  token?: string;
  tokenFile?: string;
  /** Wire protocol, both over HTTP/2: "grpc" (default) or "connect". */
  transport?: "connect" | "grpc";
}

export interface BrokerClient {
  readonly baseUrl: string;
  readonly credentials: Client<typeof CredentialService>;
  readonly signing: Client<typeof SigningService>;
  readonly callers: Client<typeof CallerService>;
  readonly keys: Client<typeof KeyService>;
  readonly server: Client<typeof ServerService>;
}

/** Adds `authorization: Bearer <token>` to every call. */
export function bearerInterceptor(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/**
 * A typed client for the daemon. The token is read once, here; it is sent
 * only as a header, never logged.
 */
export function createBrokerClient(opts: BrokerClientOptions): BrokerClient {
  const url = baseUrl(opts.addr);
  const token = opts.token ?? (opts.tokenFile ? readFileSync(opts.tokenFile, "utf8").trim() : "");
  const interceptors = token === "" ? [] : [bearerInterceptor(token)];
  const transport: Transport =
    opts.transport === "connect"
      ? createConnectTransport({ baseUrl: url, httpVersion: "2", interceptors })
      : createGrpcTransport({ baseUrl: url, interceptors });
  return {
    baseUrl: url,
    credentials: createClient(CredentialService, transport),
    signing: createClient(SigningService, transport),
    callers: createClient(CallerService, transport),
    keys: createClient(KeyService, transport),
    server: createClient(ServerService, transport),
  };
}
