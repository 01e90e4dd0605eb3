import {
  type ConnectRouter,
  type ContextValues,
  createConnectRouter,
  type Interceptor,
} from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { parseContentType as connectContentType } from "@connectrpc/connect/protocol-connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { type BodyBudget, type BodyHold, bodyBudgetExhausted } from "./body-budget.js";
import type { RequestHandler } from "./listener.js";

/** Decides the caller from the headers (auth.ts `Authenticator.fromHeaders`): true when the body may be read. */
export type HeaderAuthentication = (
  path: string,
  authorization: string | null,
  values: ContextValues,
) => Promise<boolean>;

export interface RpcHandlerOptions {
  routes: (router: ConnectRouter) => void;
  interceptors: Interceptor[];
  readMaxBytes: number;
  maxTimeoutMs: number;
  contextValues: (req: Parameters<RequestHandler>[0]) => ContextValues;
  authenticate: HeaderAuthentication;
  budget: BodyBudget;
}

/** Every content type connect-node may serve; each method's 415 lists those it does. */
const CONTENT_TYPES = [
  "application/grpc",
  "application/grpc+proto",
  "application/grpc+json",
  "application/grpc-web",
  "application/grpc-web+proto",
  "application/grpc-web+json",
  "application/proto",
  "application/json",
  "application/connect+proto",
  "application/connect+json",
];

interface Route {
  handler: UniversalHandler;
  /** The 415 answer's body: the content types this method is served in. */
  unsupported: string;
  served: string;
}

/**
 * connect-node's adapter (connectNodeAdapter) with what the listener needs
 * before a body is read: a POST whose content type no protocol serves gets
 * 415 naming those that are; the caller is authenticated from the headers,
 * and an unauthenticated request's body is never read: the RPC runs on an
 * empty stand-in message, so the auth interceptor answers and the audit
 * records it exactly as before (HTTP/2 then resets the unread stream;
 * HTTP/1.1 drops the rest of the body, until the request deadline); a body is
 * counted against the listener's BodyBudget while the request lives.
 */
export function rpcHandler(opts: RpcHandlerOptions): RequestHandler {
  const router = createConnectRouter({
    interceptors: opts.interceptors,
    readMaxBytes: opts.readMaxBytes,
    maxTimeoutMs: opts.maxTimeoutMs,
    acceptCompression: [compressionGzip, compressionBrotli],
  });
  opts.routes(router);
  const routes = new Map<string, Route>();
  for (const handler of router.handlers) {
    const served = CONTENT_TYPES.filter((t) => handler.supportedContentType(t)).join(", ");
    routes.set(handler.requestPath, {
      handler,
      served,
      unsupported: `unsupported or missing content-type; ${handler.requestPath} is served as ${served}\n`,
    });
  }

  return (req, res) => {
    const path = req.url?.split("?", 2)[0] ?? "";
    const route = routes.get(path);
    if (route === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    if (
      req.method === "POST" &&
      !route.handler.supportedContentType(req.headers["content-type"] ?? "")
    ) {
      res.writeHead(415, {
        "content-type": "text/plain; charset=utf-8",
        "accept-post": route.served,
      });
      res.end(route.unsupported);
      return;
    }
    void serve(route.handler, path, req, res);
  };

  async function serve(
    handler: UniversalHandler,
    path: string,
    req: Parameters<RequestHandler>[0],
    res: Parameters<RequestHandler>[1],
  ): Promise<void> {
    const values = opts.contextValues(req);
    const uReq = universalRequestFromNodeRequest(req, res, undefined, values);
    const hold = opts.budget.hold();
    res.once("close", hold.release);
    const authenticated = await opts.authenticate(path, uReq.header.get("authorization"), values);
    const kind = handler.method.methodKind;
    const clientStream = kind === "client_streaming" || kind === "bidi_streaming";
    const body = authenticated
      ? counted(uReq.body as AsyncIterable<Uint8Array>, hold, clientStream)
      : standIn(req.headers["content-type"] ?? "");
    // The stand-in's length is its own, not the unread body's.
    if (!authenticated) uReq.header.delete("content-length");
    try {
      await universalResponseToNodeResponse(await handler({ ...uReq, body }), res);
    } catch {
      // The client went away (connect-node's adapter ignores this too).
    }
  }
}

/**
 * `body`, each chunk counted against `hold`; past the budget,
 * resource_exhausted. A unary body is held whole until the call ends; a
 * client stream's chunk only until the reader asks for the next one (it
 * reads message by message, so a long import holds one message, not all).
 */
async function* counted(
  body: AsyncIterable<Uint8Array>,
  hold: BodyHold,
  clientStream: boolean,
): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    if (!hold.add(chunk.byteLength)) throw bodyBudgetExhausted();
    yield chunk;
    if (clientStream) hold.giveBack(chunk.byteLength);
  }
}

/**
 * An empty message in the request's own encoding, so the RPC's interceptors
 * run (and refuse it) without its body: Connect unary's JSON or empty proto
 * bytes, else one envelope of either (gRPC, gRPC-Web, Connect streaming).
 */
function standIn(contentType: string): AsyncIterable<Uint8Array> | Record<string, never> {
  const json = /json/i.test(contentType);
  const connect = connectContentType(contentType);
  if (connect !== undefined && !connect.stream) return json ? {} : iterate(new Uint8Array(0));
  const payload = json ? Buffer.from("{}") : Buffer.alloc(0);
  const envelope = Buffer.alloc(5 + payload.length);
  envelope.writeUInt32BE(payload.length, 1);
  payload.copy(envelope, 5);
  return iterate(envelope);
}

async function* iterate(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}
