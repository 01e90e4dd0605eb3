import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Caller } from "../../gen/credbroker/v1/caller_pb.js";

/** The authenticated caller of an RPC, set by the auth interceptor. */
export const CALLER = createContextKey<Caller | undefined>(undefined, { description: "caller" });

/** The caller of a handler's RPC; every non-public RPC has one (the interceptor saw to it). */
export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(CALLER);
  if (caller === undefined) throw new Error("no authenticated caller in the context");
  return caller;
}
