import type http2 from "node:http2";
import type net from "node:net";
import type { DescMessage, DescMethod, DescService, Message } from "@bufbuild/protobuf";
import {
  type ContextValues,
  createServiceImplSpec,
  type Interceptor,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  compressionNegotiate,
  createMethodSerializationLookup,
  type MethodSerializationLookup,
} from "@connectrpc/connect/protocol";
import { parseContentType as connectContentType } from "@connectrpc/connect/protocol-connect";
import { parseContentType as grpcContentType } from "@connectrpc/connect/protocol-grpc";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { type BodyBudget, bodyBudgetExhausted } from "../body-budget.js";
import type { HeaderAuthentication } from "../rpc-handler.js";
import { type Body, readBody } from "./body.js";
import type { Call } from "./call.js";
import { connectUnary } from "./connect-wire.js";
import { grpcUnary } from "./grpc-wire.js";
import { HeaderMap } from "./header-map.js";
import { CallContext, type UnaryImpl, unaryChain } from "./invoke.js";
import { compileEncoder } from "./message-encoder.js";

/** What connect-node is configured with, so both paths behave the same. */
export interface FastUnaryOptions {
  services: { service: DescService; impl: Partial<ServiceImpl<DescService>> }[];
  /** The very interceptors connect-node runs (auth, audit, errors, access log). */
  interceptors: Interceptor[];
  /** The context values an RPC starts with, from its connection's socket. */
  contextValues: (socket: net.Socket | undefined) => ContextValues;
  readMaxBytes: number;
  maxTimeoutMs: number;
  /** Decides the caller from the headers before the body is read (as connect-node's path does). */
  authenticate: HeaderAuthentication;
  /** Counts the bodies held, with connect-node's path. */
  budget: BodyBudget;
}

/** Stand-in bodies of an unauthenticated request: an empty message, enveloped for gRPC. */
const EMPTY: Body = { chunks: [Buffer.alloc(0)], size: 0, complete: true, overBudget: false };
const EMPTY_ENVELOPE: Body = {
  chunks: [Buffer.alloc(5)],
  size: 5,
  complete: true,
  overBudget: false,
};

/** Connect-node's defaults: gzip and brotli offered, messages under 1 KiB sent uncompressed. */
const COMPRESSIONS = [compressionGzip, compressionBrotli];
const COMPRESS_MIN_BYTES = 1024;

interface Route {
  spec: { method: DescMethod & { methodKind: "unary" } };
  serialization: MethodSerializationLookup<DescMessage, DescMessage>;
  invoke: ReturnType<typeof unaryChain>;
  encode: (message: Message, reserve: number) => Uint8Array;
}

/**
 * A lean path for unary RPCs sent over HTTP/2 with binary protobuf: gRPC
 * (`application/grpc`, `application/grpc+proto`) and Connect unary POST
 * (`application/proto`). It answers straight from the HTTP/2 stream instead
 * of through connect-node's compatibility request, async-iterable pipeline
 * and per-call abort plumbing, which dominate a small RPC's cost. What runs
 * in between is the same interceptors and service implementations, composed
 * once per method as connect-es composes them per call (invoke.ts), and
 * connect-es's own serialization (and so its parse errors), timeout
 * parsing, compression negotiation and error encoding.
 * Every other request (JSON, gRPC-Web, Connect GET, streaming, HTTP/1.1)
 * goes to connect-node unchanged; `handle` returns false for those.
 */
export function fastUnary(opts: FastUnaryOptions) {
  const routes = new Map<string, Route>();
  for (const { service, impl } of opts.services) {
    const spec = createServiceImplSpec(service, impl as ServiceImpl<DescService>);
    for (const method of service.methods) {
      if (!isUnary(method)) continue;
      const { impl: methodImpl } = spec.methods[method.localName] as { impl: UnaryImpl };
      const serialization = createMethodSerializationLookup(method, undefined, undefined, {
        readMaxBytes: opts.readMaxBytes,
        writeMaxBytes: 0xffffffff,
      });
      routes.set(`/${service.typeName}/${method.name}`, {
        spec: { method },
        invoke: unaryChain(method, methodImpl, opts.interceptors),
        serialization,
        encode: outputEncoder(method, serialization),
      });
    }
  }

  /** Serves the stream and returns true, or returns false (untouched) for connect-node. */
  return function handle(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
  ): boolean {
    if (headers[":method"] !== "POST") return false;
    const route = routes.get(headers[":path"] ?? "");
    if (route === undefined) return false;
    const protocol = protocolOf(headers["content-type"] ?? null);
    if (protocol === undefined) return false;
    void serve(route, protocol, stream, headers);
    return true;
  };

  async function serve(
    route: Route,
    protocol: "grpc" | "connect",
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
  ): Promise<void> {
    const requestHeader = HeaderMap.fromRequest(headers);
    const path = headers[":path"] ?? "";
    const values = opts.contextValues(stream.session?.socket);
    const hold = opts.budget.hold();
    stream.once("close", hold.release);
    // Unauthenticated: the body is never read; the RPC runs on an empty
    // message, so the auth interceptor refuses it as on connect-node's path.
    const authenticated = await opts.authenticate(path, requestHeader.get("authorization"), values);
    // The stand-in's length is its own, not the unread body's.
    if (!authenticated) requestHeader.delete("content-length");
    const body = async (bound: number): Promise<Body> => {
      if (!authenticated) return protocol === "grpc" ? EMPTY_ENVELOPE : EMPTY;
      const read = await readBody(stream, bound, hold);
      if (read.overBudget) throw bodyBudgetExhausted();
      return read;
    };
    let context: CallContext | undefined;
    const call: Call = {
      route,
      requestHeader,
      compression: (encoding, accept) =>
        compressionNegotiate(
          COMPRESSIONS,
          requestHeader.get(encoding),
          requestHeader.get(accept),
          accept,
        ),
      compressMinBytes: COMPRESS_MIN_BYTES,
      readMaxBytes: opts.readMaxBytes,
      maxTimeoutMs: opts.maxTimeoutMs,
      body,
      context: (timeoutMs, contentType) => {
        if (timeoutMs !== undefined) {
          const timer = setTimeout(() => context?.abort(new Error("deadline exceeded")), timeoutMs);
          stream.once("close", () => clearTimeout(timer));
        }
        context = new CallContext(
          route.spec.method,
          protocol,
          `http://${headers[":authority"] ?? "localhost"}${headers[":path"]}`,
          requestHeader,
          values,
          contentType,
          timeoutMs === undefined ? undefined : Date.now() + timeoutMs,
        );
        return context;
      },
      invoke: route.invoke,
      encode: route.encode,
    };
    // The client went away before its answer: tell the implementation, as connect-node does.
    let answered = false;
    stream.once("close", () => {
      if (!answered) context?.abort(new Error("stream closed"));
    });
    try {
      await (protocol === "grpc" ? grpcUnary(call, stream) : connectUnary(call, stream));
      answered = true;
    } catch {
      // Writing to a stream the client already reset; nothing is left to answer.
      if (!stream.destroyed) stream.close();
    }
  }
}

/**
 * A method's output encoding: message-encoder.ts's when the output type is
 * in its subset and the message is as expected, else connect-es's
 * serializer (its errors included), copied behind the reserved bytes.
 */
function outputEncoder(
  method: DescMethod,
  serialization: MethodSerializationLookup<DescMessage, DescMessage>,
): Route["encode"] {
  const fast = compileEncoder(method.output);
  const serializer = serialization.getO(true);
  return (message, reserve) => {
    const bytes = fast?.(message, reserve);
    if (bytes !== undefined) return bytes;
    const plain = serializer.serialize(message);
    if (reserve === 0) return plain;
    const out = Buffer.allocUnsafe(reserve + plain.byteLength);
    out.set(plain, reserve);
    return out;
  };
}

function isUnary(method: DescMethod): method is DescMethod & { methodKind: "unary" } {
  return method.methodKind === "unary";
}

/** gRPC or Connect unary, in binary; anything else (JSON, gRPC-Web, streaming) is connect-node's. */
function protocolOf(contentType: string | null): "grpc" | "connect" | undefined {
  if (grpcContentType(contentType)?.binary) return "grpc";
  const connect = connectContentType(contentType);
  return connect?.binary && !connect.stream ? "connect" : undefined;
}
