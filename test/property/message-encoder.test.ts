/**
 * The fast path's response encoder (api/unary/message-encoder.ts) writes
 * exactly protobuf-es's `toBinary` bytes, or declines: for random
 * SignRequestResponse messages (the type it compiles for), for messages with
 * unknown fields or of another type (it must decline), and with room kept in
 * front for the gRPC envelope.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { GetCredentialRequestSchema } from "../../gen/credbroker/v1/credential_service_pb.js";
import {
  type SignRequestResponse,
  SignRequestResponseSchema,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { compileEncoder } from "../../src/api/unary/message-encoder.js";

const text = fc.string({ unit: "grapheme", maxLength: 80 });
const response = fc
  .record({
    url: text,
    headers: fc.array(fc.record({ name: text, value: text }), { maxLength: 8 }),
    accessKeyId: text,
    expiresAt: fc.option(
      fc.record({
        seconds: fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n }),
        nanos: fc.integer({ min: 0, max: 999_999_999 }),
      }),
      { nil: undefined },
    ),
  })
  .map((init) => create(SignRequestResponseSchema, init));

describe("message-encoder", () => {
  const encode = compileEncoder(SignRequestResponseSchema);

  test("compiles for SignRequestResponse", () => {
    assert.ok(encode, "SignRequestResponse is inside the encoder's subset");
  });

  test("writes toBinary's bytes, after the reserved room", () => {
    fc.assert(
      fc.property(response, fc.integer({ min: 0, max: 5 }), (message, reserve) => {
        const out = encode?.(message, reserve);
        assert.ok(out, "a well-formed message is encoded");
        assert.deepEqual(
          Buffer.from(out.subarray(reserve)),
          Buffer.from(toBinary(SignRequestResponseSchema, message)),
        );
        assert.equal(out.length, reserve + toBinary(SignRequestResponseSchema, message).length);
      }),
      { numRuns: 1000 },
    );
  });

  test("declines what it does not expect: unknown fields, another type, a wrong value type", () => {
    fc.assert(
      fc.property(response, (message) => {
        const withUnknown: SignRequestResponse = {
          ...message,
          $unknown: [{ no: 99, wireType: 2, data: new Uint8Array([1, 2]) }],
        };
        assert.equal(encode?.(withUnknown, 0), undefined);
        assert.equal(encode?.(create(GetCredentialRequestSchema, { name: "x" }), 0), undefined);
        const wrong = { ...message, url: 42 } as unknown as SignRequestResponse;
        assert.equal(encode?.(wrong, 0), undefined);
      }),
      { numRuns: 200 },
    );
  });
});
