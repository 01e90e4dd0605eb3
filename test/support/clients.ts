import type { DescMethodUnary, DescService, MessageShape } from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type Client,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";

/** The protocols and HTTP versions the API port serves. */
export type Protocol = "connect-h2" | "connect-h1" | "grpc-web-h1" | "grpc-web-h2" | "grpc-h2";

export const PROTOCOLS: readonly Protocol[] = [
  "connect-h2",
  "connect-h1",
  "grpc-web-h1",
  "grpc-web-h2",
  "grpc-h2",
];

function bearer(token: string | undefined): Interceptor {
  return (next) => (req) => {
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** A connect-es transport for `protocol`, sending `token` as a bearer token when given. */
export function transport(url: string, protocol: Protocol, token?: string): Transport {
  const interceptors = [bearer(token)];
  switch (protocol) {
    case "connect-h2":
      return createConnectTransport({ baseUrl: url, httpVersion: "2", interceptors });
    case "connect-h1":
      return createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors });
    case "grpc-web-h1":
      return createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", interceptors });
    case "grpc-web-h2":
      return createGrpcWebTransport({ baseUrl: url, httpVersion: "2", interceptors });
    case "grpc-h2":
      return createGrpcTransport({ baseUrl: url, interceptors });
  }
}

/** A CredentialService client over `protocol`. */
export function credentialClient(
  url: string,
  protocol: Protocol,
  token?: string,
): Client<typeof CredentialService> {
  return createClient(CredentialService, transport(url, protocol, token));
}

/** Unary methods of a service, called through @grpc/grpc-js: the reference gRPC client. */
export type GrpcJsClient<S extends DescService> = {
  [M in keyof S["method"]]: S["method"][M] extends DescMethodUnary<infer I, infer O>
    ? (req: MessageShape<I>, metadata?: grpc.Metadata) => Promise<MessageShape<O>>
    : never;
};

/** A grpc-js error: a real gRPC status. */
export interface GrpcStatusError extends Error {
  code: grpc.status;
  details: string;
}

/**
 * A @grpc/grpc-js client for `service`, serializing with protobuf-es. The
 * token (when given) goes in `authorization` metadata on every call; the
 * channel is cleartext unless `credentials` say otherwise (e.g. createSsl).
 */
export function grpcJsClient<S extends DescService>(
  service: S,
  url: string,
  token?: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): { client: GrpcJsClient<S>; close(): void } {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (m) =>
        Buffer.from(toBinary(method.input, m as MessageShape<typeof method.input>)),
      requestDeserialize: (b: Buffer) => fromBinary(method.input, b),
      responseSerialize: (m) =>
        Buffer.from(toBinary(method.output, m as MessageShape<typeof method.output>)),
      responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
    };
  }
  const Ctor = grpc.makeGenericClientConstructor(definition, service.typeName);
  const raw = new Ctor(new URL(url).host, credentials) as unknown as Record<
    string,
    (
      req: unknown,
      md: grpc.Metadata,
      cb: (err: grpc.ServiceError | null, res: unknown) => void,
    ) => void
  >;
  const client = {} as Record<string, unknown>;
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    client[method.localName] = (req: unknown, metadata = new grpc.Metadata()) => {
      if (token !== undefined && metadata.get("authorization").length === 0) {
        metadata.set("authorization", `Bearer ${token}`);
      }
      return new Promise((resolve, reject) => {
        raw[method.localName]?.call(raw, req, metadata, (err, res) =>
          err ? reject(err) : resolve(res),
        );
      });
    };
  }
  return {
    client: client as GrpcJsClient<S>,
    close: () => (raw as unknown as grpc.Client).close(),
  };
}

/** The ConnectError `p` fails with; fails the test when `p` succeeds. */
export async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => ConnectError.from(e),
  );
}
