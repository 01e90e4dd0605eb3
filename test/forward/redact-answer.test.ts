import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { REDACTED, redactAnswer, redactionForms } from "../../src/forward/redact-answer.js";

describe("redactAnswer", () => {
  test("every form, in headers (names and values) and body", () => {
    const secret = "s3cr3t/val+ue";
    const forms = redactionForms([secret]);
    const body = Buffer.from(
      `raw ${secret} json ${JSON.stringify({ t: secret })} php "s3cr3t\\/val+ue" url ${encodeURIComponent(secret)}`,
    );
    const out = redactAnswer(
      [
        ["x-echo", `Bearer ${secret}`],
        [`x-${secret}`, "v"],
      ],
      body,
      forms,
    );
    assert.equal(out.redacted, true);
    const text = out.body.toString();
    assert.ok(!text.includes("s3cr3t"), text);
    assert.equal(text.split(REDACTED).length - 1, 4, text);
    assert.deepEqual(out.headers[0], ["x-echo", `Bearer ${REDACTED}`]);
    assert.ok(!out.headers[1]?.[0].includes("s3cr3t"));
  });

  test("nothing to redact: the same bytes, not marked", () => {
    const body = Buffer.from("nothing here");
    const out = redactAnswer([["a", "b"]], body, redactionForms(["secret"]));
    assert.equal(out.redacted, false);
    assert.equal(out.body, body);
  });

  test("property: no form of the secret survives, whatever surrounds it", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 4, maxLength: 40, unit: fc.constantFrom(...'bXYZ019/+=%&"\\') }),
        fc.array(fc.string({ maxLength: 20 }), { maxLength: 6 }),
        (secret, fillers) => {
          const forms = redactionForms([secret]);
          const text = fillers.map((f, i) => `${f}${forms[i % forms.length]}`).join("");
          const out = redactAnswer([], Buffer.from(text), forms).body.toString();
          assert.ok(!out.includes(secret), `${JSON.stringify(secret)} in ${JSON.stringify(out)}`);
        },
      ),
      { numRuns: 500 },
    );
  });
});
