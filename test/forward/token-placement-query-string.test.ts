import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { TokenPlacement, TokenSchema } from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../../src/core/errors.js";
import { placeToken } from "../../src/forward/token-placement.js";

const SIG = "Ab3/xY+9kLmN0pQrStUvWxYz0123456789abcdefGHI=";
const SAS = `sv=2024-11-04&se=2030-01-01T00%3A00%3A00Z&sr=c&sp=rl&sig=${encodeURIComponent(SIG)}`;
const sas = () => create(TokenSchema, { token: SAS, placement: TokenPlacement.QUERY_STRING });

describe("placeToken: QUERY_STRING (an Azure SAS)", () => {
  test("appended to the URL's query as it is, no header", () => {
    const placed = placeToken(sas(), [], "restype=container&comp=list");
    assert.equal(placed.header, undefined);
    assert.equal(placed.query, `restype=container&comp=list&${SAS}`);
    assert.equal(placeToken(sas(), [], "").query, SAS);
  });

  test("redaction forms: the token and its signature as written and decoded, not short values", () => {
    const { sentForms } = placeToken(sas(), [], "");
    assert.ok(sentForms.includes(SAS));
    assert.ok(sentForms.includes(SIG), "the decoded sig");
    assert.ok(sentForms.includes(encodeURIComponent(SIG)), "the sig as written");
    assert.ok(!sentForms.includes("rl"), "sp=rl would redact unrelated text");
    assert.ok(!sentForms.includes("c"));
    assert.ok(sentForms.includes("2030-01-01T00:00:00Z"), "values of 16+ characters count");
  });

  test("a caller query naming a SAS parameter is refused, naming no value", () => {
    for (const query of ["sig=forged", "SP=rwd", "a=1&se=2099-01-01"]) {
      assert.throws(
        () => placeToken(sas(), [], query),
        (e: unknown) =>
          e instanceof DomainError &&
          e.code === "invalid_argument" &&
          !e.message.includes("forged") &&
          /set by the broker/.test(e.message),
      );
    }
  });
});
