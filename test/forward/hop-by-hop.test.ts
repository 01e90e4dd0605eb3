import assert from "node:assert/strict";
import { test } from "node:test";
import { dropHopByHop } from "../../src/forward/hop-by-hop.js";

test("drops every hop-by-hop header, any case, and keeps the rest in order with repeats", () => {
  const kept = dropHopByHop([
    ["Accept", "a"],
    ["Connection", "keep-alive"],
    ["KEEP-ALIVE", "timeout=5"],
    ["Proxy-Authorization", "Basic x"],
    ["proxy-connection", "close"],
    ["Proxy-Authenticate", "Basic"],
    ["TE", "trailers"],
    ["Trailer", "x-sum"],
    ["Transfer-Encoding", "chunked"],
    ["Upgrade", "websocket"],
    ["x-b", "1"],
    ["accept", "b"],
    ["x-b", "2"],
  ]);
  assert.deepEqual(kept, [
    ["Accept", "a"],
    ["x-b", "1"],
    ["accept", "b"],
    ["x-b", "2"],
  ]);
});

test("drops the headers the Connection header names, in every Connection header", () => {
  const kept = dropHopByHop([
    ["x-foo", "1"],
    ["connection", " X-Foo , x-bar"],
    ["X-BAR", "2"],
    ["Connection", "x-baz"],
    ["x-baz", "3"],
    ["x-kept", "4"],
  ]);
  assert.deepEqual(kept, [["x-kept", "4"]]);
});

test("returns copies: the input is not changed", () => {
  const input: [string, string][] = [["a", "1"]];
  const out = dropHopByHop(input);
  out[0]?.splice(1, 1, "2");
  assert.deepEqual(input, [["a", "1"]]);
});
