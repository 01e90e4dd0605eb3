/**
 * allowed_hosts matching (src/providers/aws/policy.ts `hostAllowed`), as documented
 * there and in docs/API.md: an entry is an exact host or `*.suffix`;
 * `*.example.com` matches deeper subdomains only (never example.com itself,
 * never evilexample.com); matching is case-insensitive; with no entries only
 * AWS endpoints (*.amazonaws.com, *.amazonaws.com.cn). The host matched is
 * the one `parseRawUrl` reads from the URL, so that must be the host a
 * standard URL parser would send the request to.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { SignRequestRequestSchema } from "../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../../src/core/errors.js";
import { parseRawUrl } from "../../src/core/raw-url.js";
import { isAwsHost } from "../../src/providers/aws/endpoint.js";
import { hostAllowed } from "../../src/providers/aws/policy.js";
import { planSignature, validateSignRequest } from "../../src/providers/aws/sign-plan.js";
import { accessKeyInput, edited, FIXED_NOW } from "../core/fixtures.js";

const RUNS = { numRuns: 400 };

/** A DNS label as field-checks.ts accepts it: [a-z0-9_], inner '-', 1-63 long. */
const label = fc.stringMatching(/^[a-z0-9_]([a-z0-9_-]{0,10}[a-z0-9_])?$/);
/** Labels from a small pool, so that patterns and hosts collide often. */
const smallLabel = fc.constantFrom("a", "b", "ab", "example", "evil", "com", "x-y", "1", "_s");
const hostOf = (l: fc.Arbitrary<string>, min = 1) =>
  fc.array(l, { minLength: min, maxLength: 5 }).map((ls) => ls.join("."));
const host = hostOf(label);
const smallHost = hostOf(smallLabel);
const smallPattern = fc.tuple(fc.boolean(), smallHost).map(([w, h]) => (w ? `*.${h}` : h));

/** The documented rule, on labels rather than strings. */
function reference(patterns: readonly string[], h: string): boolean {
  const hostLabels = h.toLowerCase().split(".");
  return patterns.some((raw) => {
    const p = raw.toLowerCase();
    if (!p.startsWith("*.")) return p === h.toLowerCase();
    const suffix = p.slice(2).split(".");
    if (hostLabels.length <= suffix.length) return false;
    return suffix.every((s, i) => s === hostLabels[hostLabels.length - suffix.length + i]);
  });
}

describe("hostAllowed: exact hosts", () => {
  test("an exact host matches itself, in any letter case on either side", () => {
    fc.assert(
      fc.property(
        host.chain((h) => fc.tuple(fc.mixedCase(fc.constant(h)), fc.mixedCase(fc.constant(h)))),
        ([pattern, request]) => {
          assert.ok(hostAllowed([pattern], request), `${pattern} vs ${request}`);
        },
      ),
      RUNS,
    );
  });

  test("an exact host matches neither its subdomains nor names that extend it", () => {
    fc.assert(
      fc.property(host, label, (h, l) => {
        assert.equal(hostAllowed([h], `${l}.${h}`), false);
        assert.equal(hostAllowed([h], `${l}${h}`), false);
        assert.equal(hostAllowed([h], `${h}.${l}`), false);
        assert.equal(hostAllowed([h], `${h}${l}`), false);
      }),
      RUNS,
    );
  });
});

describe("hostAllowed: *.suffix", () => {
  test("matches every subdomain of one or more labels, in any case", () => {
    fc.assert(
      fc.property(host, hostOf(label), fc.boolean(), (suffix, sub, upper) => {
        const h = `${sub}.${suffix}`;
        assert.ok(hostAllowed([`*.${suffix}`], upper ? h.toUpperCase() : h));
        assert.ok(hostAllowed([`*.${suffix}`.toUpperCase()], h));
      }),
      RUNS,
    );
  });

  test("never matches the suffix itself, a name merely ending in it, or another last label", () => {
    fc.assert(
      fc.property(host, label, (suffix, l) => {
        const pattern = `*.${suffix}`;
        assert.equal(hostAllowed([pattern], suffix), false, "the apex");
        assert.equal(hostAllowed([pattern], `${l}${suffix}`), false, "evilexample.com");
        assert.equal(hostAllowed([pattern], `${l}.${suffix}${l}`), false, "another last label");
        assert.equal(hostAllowed([pattern], `.${suffix}`), false, "an empty label");
      }),
      RUNS,
    );
  });

  test("agrees with the label-wise rule on hosts and patterns that collide often", () => {
    fc.assert(
      fc.property(fc.array(smallPattern, { minLength: 1, maxLength: 4 }), smallHost, (ps, h) => {
        assert.equal(hostAllowed(ps, h), reference(ps, h));
      }),
      { numRuns: 2000 },
    );
  });

  test("a list allows exactly what one of its entries allows, in any order", () => {
    fc.assert(
      fc.property(
        fc.array(smallPattern, { minLength: 1, maxLength: 3 }),
        fc.array(smallPattern, { minLength: 1, maxLength: 3 }),
        smallHost,
        (a, b, h) => {
          const both = hostAllowed([...a, ...b], h);
          assert.equal(both, hostAllowed(a, h) || hostAllowed(b, h));
          assert.equal(hostAllowed([...b, ...a].reverse(), h), both);
        },
      ),
      RUNS,
    );
  });
});

describe("hostAllowed: no entries means AWS endpoints only", () => {
  test("every name under amazonaws.com(.cn) is allowed, in any case", () => {
    fc.assert(
      fc.property(hostOf(label), fc.boolean(), fc.boolean(), (sub, cn, upper) => {
        const h = `${sub}.amazonaws.com${cn ? ".cn" : ""}`;
        assert.ok(hostAllowed([], upper ? h.toUpperCase() : h));
      }),
      RUNS,
    );
  });

  test("a name whose last labels are not amazonaws.com(.cn) is refused", () => {
    const awsish = fc.constantFrom(
      "amazonaws",
      "com",
      "cn",
      "s3",
      "evilamazonaws",
      "amazonaws-com",
    );
    fc.assert(
      fc.property(hostOf(fc.oneof(label, awsish)), (h) => {
        const labels = h.split(".");
        const tail = labels.slice(-3).join(".");
        const aws =
          (labels.length > 2 && labels.slice(-2).join(".") === "amazonaws.com") ||
          (labels.length > 3 && tail === "amazonaws.com.cn");
        assert.equal(hostAllowed([], h), aws, h);
        assert.equal(isAwsHost(h), aws);
      }),
      { numRuns: 1000 },
    );
  });
});

/** Pieces of URLs that parsers disagree on: userinfo, ports, backslashes, fragments, escapes. */
const urlPiece = fc.constantFrom(
  "example.com",
  "a.example.com",
  "evil.com",
  "a",
  ".",
  "..",
  "@",
  ":",
  ":443",
  ":0",
  ":99999",
  "/",
  "\\",
  "?",
  "#",
  "%2e",
  "%40",
  "%2F",
  "*",
  " ",
  "[",
  "]",
  "[::1]",
  "_",
  "~",
  "-",
  "A",
  "0x7f",
  "\t",
);
const trickyUrl = fc
  .tuple(
    fc.constantFrom("https://", "http://", "HTTPS://", "https:/", "https:\\\\"),
    fc.array(urlPiece, { maxLength: 8 }),
  )
  .map(([scheme, pieces]) => scheme + pieces.join(""));

/** True when WHATWG would read the host as an IPv4 number or an IPv6 literal (it rewrites those). */
function ipLike(hostname: string): boolean {
  if (hostname.startsWith("[")) return true;
  const labels = hostname.split(".").filter((l, i, all) => l !== "" || i < all.length - 1);
  const last = labels.at(-1) ?? "";
  return /^(0x[0-9a-f]*|[0-9]+)$/i.test(last);
}

describe("the host a URL names", () => {
  test("parseRawUrl either refuses a URL with invalid_argument or reads the host WHATWG reads", () => {
    fc.assert(
      fc.property(trickyUrl, (url) => {
        let ours: ReturnType<typeof parseRawUrl>;
        try {
          ours = parseRawUrl(url);
        } catch (e) {
          assert.ok(e instanceof DomainError, `${url}: ${String(e)}`);
          assert.equal(e.code, "invalid_argument");
          return;
        }
        assert.match(ours.host, /^(\[[0-9a-f:.]+\]|[a-z0-9._~-]+)$/);
        let whatwg: URL;
        try {
          whatwg = new URL(url);
        } catch {
          return; // no client could send it either
        }
        if (ipLike(whatwg.hostname) || ipLike(ours.host)) return;
        assert.equal(ours.host, whatwg.hostname, url);
      }),
      { numRuns: 3000 },
    );
  });

  test("a signature for a *.example.com credential is only ever made for a host under example.com", () => {
    const c = edited(accessKeyInput(), (x) => {
      x.allowedHosts = ["*.example.com"];
      x.allowedScopes = [];
      x.expiresAt = undefined;
    });
    fc.assert(
      fc.property(trickyUrl, (url) => {
        const req = create(SignRequestRequestSchema, {
          namespace: c.namespace,
          credential: c.name,
          method: "GET",
          url,
          service: "execute-api",
          region: "eu-west-1",
        });
        try {
          planSignature(validateSignRequest(req), c, FIXED_NOW);
        } catch (e) {
          assert.ok(e instanceof DomainError, `${url}: ${String(e)}`);
          assert.ok(["invalid_argument", "permission_denied"].includes(e.code), e.code);
          return;
        }
        let hostname: string;
        try {
          // One trailing dot names the same DNS host (the matcher drops it too).
          hostname = new URL(url).hostname.replace(/\.$/, "");
        } catch {
          return; // no client could send it
        }
        assert.ok(
          hostname.endsWith(".example.com") && hostname.length > ".example.com".length,
          `${url} signed for ${hostname}`,
        );
      }),
      { numRuns: 3000 },
    );
  });
});
