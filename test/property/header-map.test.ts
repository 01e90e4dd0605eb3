/**
 * The fast path's Headers (api/unary/header-map.ts) answers like fetch's
 * Headers (undici's) for everything the interceptors and connect-es do with
 * them: random sequences of set, append and delete, with names in any case,
 * then every get, has and entry compared. Request headers as node's HTTP/2
 * parser hands them over (pseudo-headers, repeated values) become the same
 * entries as fetch's Headers built from them.
 */
import assert from "node:assert/strict";
import type http2 from "node:http2";
import { describe, test } from "node:test";
import fc from "fast-check";
import { HeaderMap } from "../../src/api/unary/header-map.js";

const NAMES = ["grpc-status", "Grpc-Status", "x-request-id", "X-REQUEST-ID", "trailer-a", "te"];
const name = fc.constantFrom(...NAMES);
const value = fc.stringMatching(/^[!-~]([ !-~]{0,10}[!-~])?$/);
const op = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), name, value }),
  fc.record({ kind: fc.constant("append" as const), name, value }),
  fc.record({ kind: fc.constant("delete" as const), name, value: fc.constant("") }),
);

/** Entries sorted by name: fetch sorts them, HeaderMap keeps insertion order (HTTP/2 does not care). */
const sorted = (h: Headers) => [...h].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

describe("HeaderMap", () => {
  test("answers as fetch's Headers after random set, append and delete", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 20 }), (ops) => {
        const ours = new HeaderMap();
        const fetchs = new Headers();
        for (const o of ops) {
          for (const h of [ours, fetchs]) {
            if (o.kind === "delete") h.delete(o.name);
            else h[o.kind](o.name, o.value);
          }
        }
        for (const n of NAMES) {
          assert.equal(ours.get(n), fetchs.get(n), `get ${n}`);
          assert.equal(ours.has(n), fetchs.has(n), `has ${n}`);
        }
        assert.deepEqual(sorted(ours), sorted(fetchs));
        const viaForEach: [string, string][] = [];
        ours.forEach((v, k) => {
          viaForEach.push([k, v]);
        });
        assert.deepEqual(viaForEach, [...ours.entries()]);
        assert.deepEqual(
          [...ours.keys()],
          [...ours].map(([k]) => k),
        );
        assert.deepEqual(
          [...ours.values()],
          [...ours].map(([, v]) => v),
        );
        // connect-es copies headers with `new Headers(h)`: ours must be a valid init.
        assert.deepEqual(sorted(new Headers(ours)), sorted(fetchs));
      }),
    );
  });

  test("a request's headers: pseudo-headers dropped, repeated values joined as fetch joins them", () => {
    const incoming = {
      ":method": "POST",
      ":path": "/credbroker.v1.SigningService/SignRequest",
      "content-type": "application/grpc",
      authorization: "Bearer abc",
      "x-multi": ["one", "two"],
    } as http2.IncomingHttpHeaders;
    const ours = HeaderMap.fromRequest(incoming);
    const fetchs = new Headers();
    fetchs.set("content-type", "application/grpc");
    fetchs.set("authorization", "Bearer abc");
    fetchs.append("x-multi", "one");
    fetchs.append("x-multi", "two");
    assert.deepEqual(sorted(ours), sorted(fetchs));
    assert.equal(ours.get(":path"), null);
    assert.equal(ours.get("Authorization"), "Bearer abc");
  });
});
