/**
 * Name validation (src/core/names.ts, and the name checks of
 * validateCredential in src/core/validate.ts): a name is 1-64 of letters,
 * digits, '.', '_', '-'; a namespace is "" or a name. Anything else is
 * refused with a DomainError invalid_argument, never another error; and
 * because valid names hold no '/', the store's keys for them never collide
 * and a namespace's key range holds exactly that namespace (src/store/keys.ts).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { DomainError } from "../../src/core/errors.js";
import {
  assertNamespace,
  assertRef,
  displayName,
  isValidName,
  isValidNamespace,
} from "../../src/core/names.js";
import { validateCredential } from "../../src/core/validate.js";
import { nameKey, namePrefix, prefixEnd } from "../../src/store/keys.js";
import { accessKeyInput, edited, SECRET_ACCESS_KEY } from "../core/fixtures.js";

const RUNS = { numRuns: 500 };
const ALLOWED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

/** The rule written out again, on UTF-16 code units as the regex sees them. */
const documented = (s: string) =>
  s.length >= 1 && s.length <= 64 && [...s].every((ch) => ALLOWED.includes(ch));

const validName = fc.string({ unit: fc.constantFrom(...ALLOWED), minLength: 1, maxLength: 64 });
/** Anything at all: lone surrogates, controls, NUL, line breaks, '/', lengths 0-80. */
const anyText = fc.oneof(
  fc.string({
    unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    maxLength: 80,
  }),
  fc.string({ unit: "binary", maxLength: 70 }),
  validName.map((n) => `${n}\n`),
  validName.map((n) => `\n${n}`),
  validName.chain((n) =>
    fc.constantFrom("/", "\\", " ", "\u0000", "..", "é", "\u212a", ":", "*").map((c) => n + c),
  ),
  fc.string({ unit: fc.constantFrom(...ALLOWED), minLength: 65, maxLength: 80 }),
);
/** A name with exactly one forbidden character somewhere in it. */
const badName = fc
  .tuple(
    fc.string({ unit: fc.constantFrom(...ALLOWED), maxLength: 30 }),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }).filter((c) => !ALLOWED.includes(c)),
    fc.string({ unit: fc.constantFrom(...ALLOWED), maxLength: 30 }),
  )
  .map(([a, c, b]) => a + c + b);

/** Runs `f`, returning undefined or the DomainError it threw; any other throw fails the property. */
function refusal(f: () => void): DomainError | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    assert.ok(e instanceof DomainError, `threw ${String(e)}`);
    return e;
  }
}

describe("names and namespaces", () => {
  test("every generated valid name is a name, a namespace and a reference", () => {
    fc.assert(
      fc.property(validName, validName, (ns, name) => {
        assert.ok(isValidName(name));
        assert.ok(isValidNamespace(ns));
        assert.equal(
          refusal(() => assertRef(ns, name)),
          undefined,
        );
        assert.equal(
          refusal(() => assertRef("", name)),
          undefined,
          "the workspace",
        );
      }),
      RUNS,
    );
  });

  test("any string is accepted exactly when the documented rule holds, else invalid_argument", () => {
    fc.assert(
      fc.property(anyText, (s) => {
        assert.equal(isValidName(s), documented(s), JSON.stringify(s));
        assert.equal(isValidNamespace(s), s === "" || documented(s));
        const asName = refusal(() => assertRef("", s));
        assert.equal(asName === undefined, documented(s));
        if (asName) assert.equal(asName.code, "invalid_argument");
        const asNamespace = refusal(() => assertNamespace(s));
        assert.equal(asNamespace === undefined, s === "" || documented(s));
        if (asNamespace) assert.equal(asNamespace.code, "invalid_argument");
      }),
      { numRuns: 2000 },
    );
  });

  test("one forbidden character, anywhere, refuses the name and the namespace", () => {
    fc.assert(
      fc.property(badName, validName, (bad, good) => {
        for (const f of [() => assertRef("", bad), () => assertRef(bad, good)]) {
          assert.equal(refusal(f)?.code, "invalid_argument", JSON.stringify(bad));
        }
      }),
      RUNS,
    );
  });

  test("the error names the field and never echoes the input", () => {
    fc.assert(
      fc.property(
        badName.filter((b) => b.length > 20),
        (bad) => {
          const e = refusal(() => assertRef("", bad, "stored."));
          assert.ok(e?.message.startsWith("stored.name:"), e?.message);
          assert.equal(e?.message.includes(bad), false);
        },
      ),
      RUNS,
    );
  });
});

describe("validateCredential on names", () => {
  test("refuses a credential with invalid_argument exactly when its name or namespace is invalid", () => {
    fc.assert(
      fc.property(
        fc.oneof(validName, anyText),
        fc.oneof(validName, anyText, fc.constant("")),
        (name, ns) => {
          const c = edited(accessKeyInput(), (x) => {
            x.name = name;
            x.namespace = ns;
          });
          const e = refusal(() => validateCredential(c));
          const ok = documented(name) && (ns === "" || documented(ns));
          assert.equal(e === undefined, ok, `${JSON.stringify(ns)}/${JSON.stringify(name)}`);
          if (e) {
            assert.equal(e.code, "invalid_argument");
            assert.equal(e.message.includes(SECRET_ACCESS_KEY), false, "no secret in the message");
          }
        },
      ),
      RUNS,
    );
  });
});

describe("store keys of valid names", () => {
  test("distinct references have distinct keys and display names", () => {
    fc.assert(
      fc.property(
        fc.tuple(fc.oneof(fc.constant(""), validName), validName),
        fc.tuple(fc.oneof(fc.constant(""), validName), validName),
        ([ns1, n1], [ns2, n2]) => {
          const same = ns1 === ns2 && n1 === n2;
          assert.equal(nameKey(ns1, n1) === nameKey(ns2, n2), same);
          assert.equal(displayName(ns1, n1) === displayName(ns2, n2), same);
        },
      ),
      RUNS,
    );
  });

  test("a namespace's key range holds exactly the names of that namespace", () => {
    const short = fc.string({
      unit: fc.constantFrom("a", "b", ".", "-", "_", "0"),
      minLength: 1,
      maxLength: 4,
    });
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(""), short),
        fc.oneof(fc.constant(""), short),
        short,
        (ns, other, name) => {
          const start = namePrefix(ns, 0);
          const end = prefixEnd(start);
          const key = nameKey(other, name);
          assert.equal(key >= start && key < end, ns === other, `${key} in [${start}, ${end})`);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
