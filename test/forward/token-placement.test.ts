import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { TokenPlacement, TokenSchema } from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../../src/core/errors.js";
import { placeToken } from "../../src/forward/token-placement.js";

const T = "abc/+=&x";
const token = (placement: TokenPlacement, fields: Record<string, string> = {}) =>
  create(TokenSchema, { token: T, placement, ...fields });

describe("placeToken", () => {
  test("unset and BEARER: Authorization: Bearer", () => {
    for (const p of [TokenPlacement.UNSPECIFIED, TokenPlacement.BEARER]) {
      const placed = placeToken(token(p), [], "a=1");
      assert.deepEqual(placed.header, ["authorization", `Bearer ${T}`]);
      assert.equal(placed.query, "a=1");
      assert.deepEqual(placed.sentForms, [T]);
    }
  });

  test("HEADER: the named header with its prefix", () => {
    const placed = placeToken(
      token(TokenPlacement.HEADER, { headerName: "X-Key", prefix: "Token " }),
      [],
      "",
    );
    assert.deepEqual(placed.header, ["X-Key", `Token ${T}`]);
  });

  test("QUERY: appended URL-encoded; both forms are redacted", () => {
    const placed = placeToken(token(TokenPlacement.QUERY, { queryName: "api_key" }), [], "a=1");
    assert.equal(placed.header, undefined);
    assert.equal(placed.query, `a=1&api_key=${encodeURIComponent(T)}`);
    assert.deepEqual(placed.sentForms, [T, encodeURIComponent(T)]);
    assert.equal(
      placeToken(token(TokenPlacement.QUERY, { queryName: "k" }), [], "").query,
      `k=${encodeURIComponent(T)}`,
    );
  });

  test("BASIC: base64 of user:token, which is redacted too", () => {
    const placed = placeToken(token(TokenPlacement.BASIC, { username: "bot" }), [], "");
    const basic = Buffer.from(`bot:${T}`).toString("base64");
    assert.deepEqual(placed.header, ["authorization", `Basic ${basic}`]);
    assert.deepEqual(placed.sentForms, [T, basic]);
  });

  test("the caller may not set the token's header or query parameter", () => {
    const refused = (f: () => unknown) =>
      assert.throws(f, (e) => e instanceof DomainError && e.code === "invalid_argument");
    refused(() =>
      placeToken(token(TokenPlacement.HEADER, { headerName: "X-Key" }), [["x-key", "mine"]], ""),
    );
    refused(() =>
      placeToken(token(TokenPlacement.QUERY, { queryName: "api_key" }), [], "a=1&api_key=mine"),
    );
    refused(() =>
      placeToken(token(TokenPlacement.QUERY, { queryName: "api_key" }), [], "api%5Fkey=mine"),
    );
  });
});
