import type http2 from "node:http2";
import type { BodyHold } from "../body-budget.js";

export interface Body {
  chunks: Buffer[];
  size: number;
  /** False when more than `bound` bytes came: the rest was read and dropped. */
  complete: boolean;
  /** True when the listener's body budget had no room: reading stopped. */
  overBudget: boolean;
}

/**
 * A request body, kept up to `bound` bytes and counted against `hold`. Past
 * `bound` nothing more is kept, but the stream is still read to its end and
 * dropped, so an oversized upload finishes instead of stalling on flow
 * control with its stream half-open. Past the budget, reading stops (the
 * stream is paused, and reset once answered).
 */
export function readBody(
  stream: http2.ServerHttp2Stream,
  bound: number,
  hold: BodyHold,
): Promise<Body> {
  return new Promise((resolve) => {
    const body: Body = { chunks: [], size: 0, complete: true, overBudget: false };
    const done = () => resolve(body);
    const onData = (chunk: Buffer) => {
      if (!body.complete) return;
      if (!hold.add(chunk.length)) {
        body.overBudget = true;
        stream.off("data", onData);
        stream.pause();
        done();
        return;
      }
      body.chunks.push(chunk);
      body.size += chunk.length;
      if (body.size > bound) {
        body.complete = false;
        done();
      }
    };
    stream.on("data", onData);
    stream.once("end", done);
    stream.once("close", done);
    // An empty body may have ended while the caller was authenticated.
    if (stream.readableEnded || stream.destroyed) done();
  });
}

/** The body as one buffer. */
export function joined(body: Body): Buffer {
  return body.chunks.length === 1
    ? (body.chunks[0] as Buffer)
    : Buffer.concat(body.chunks, body.size);
}

/** HTTP headers for `stream.respond`, from fetch Headers. */
export function headerObject(
  headers: Headers,
  into: http2.OutgoingHttpHeaders,
): http2.OutgoingHttpHeaders {
  headers.forEach((value, name) => {
    into[name] = value;
  });
  return into;
}
