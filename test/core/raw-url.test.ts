import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  encodeOnce,
  MAX_URL_BYTES,
  parseRawUrl,
  percentDecode,
  queryParams,
  type RawUrl,
  uriEncode,
} from "../../src/core/raw-url.js";
import { domainError } from "./fixtures.js";

const https = (authority: string, host: string, path: string, query = ""): RawUrl => ({
  scheme: "https",
  host,
  authority,
  port: undefined,
  path,
  query,
});

const parsed: [label: string, url: string, expected: RawUrl][] = [
  [
    "a plain S3 URL",
    "https://s3.amazonaws.com/bucket/key",
    https("s3.amazonaws.com", "s3.amazonaws.com", "/bucket/key"),
  ],
  ["no path becomes /", "https://example.com", https("example.com", "example.com", "/")],
  [
    "no path with a query",
    "https://example.com?list-type=2",
    https("example.com", "example.com", "/", "list-type=2"),
  ],
  [
    "a trailing ? is an empty query",
    "https://example.com/k?",
    https("example.com", "example.com", "/k"),
  ],
  [
    "dot segments kept",
    "https://example.com/b/./a/../k",
    https("example.com", "example.com", "/b/./a/../k"),
  ],
  [
    "encoded dot segments kept",
    "https://example.com/b/%2E%2E/k",
    https("example.com", "example.com", "/b/%2E%2E/k"),
  ],
  [
    "a raw space kept",
    "https://example.com/b/my file.txt",
    https("example.com", "example.com", "/b/my file.txt"),
  ],
  ["UTF-8 kept", "https://example.com/b/café/ü", https("example.com", "example.com", "/b/café/ü")],
  ["'+' kept", "https://example.com/b/a+b", https("example.com", "example.com", "/b/a+b")],
  ["%2F kept", "https://example.com/b/a%2Fb", https("example.com", "example.com", "/b/a%2Fb")],
  ["double slashes kept", "https://example.com/b//k", https("example.com", "example.com", "/b//k")],
  [
    "query as written (order, encoding, repeats, '+')",
    "https://example.com/b?z=1&a=%2F&a=x+y&flag",
    https("example.com", "example.com", "/b", "z=1&a=%2F&a=x+y&flag"),
  ],
  [
    "a '?' inside the query stays in the query",
    "https://example.com/b?a=b?c",
    https("example.com", "example.com", "/b", "a=b?c"),
  ],
  [
    "scheme and host lower-cased, authority and path as written",
    "HTTPS://Example.COM/Path/Key",
    https("Example.COM", "example.com", "/Path/Key"),
  ],
  [
    "http with a port",
    "http://127.0.0.1:8080/b/k",
    {
      scheme: "http",
      host: "127.0.0.1",
      authority: "127.0.0.1:8080",
      port: 8080,
      path: "/b/k",
      query: "",
    },
  ],
  [
    "port 1",
    "http://localhost:1/",
    { scheme: "http", host: "localhost", authority: "localhost:1", port: 1, path: "/", query: "" },
  ],
  [
    "port 65535",
    "https://localhost:65535/x",
    {
      scheme: "https",
      host: "localhost",
      authority: "localhost:65535",
      port: 65535,
      path: "/x",
      query: "",
    },
  ],
  [
    "IPv6 literal",
    "http://[::1]/b/k",
    { scheme: "http", host: "[::1]", authority: "[::1]", port: undefined, path: "/b/k", query: "" },
  ],
  [
    "IPv6 literal with a port, host lower-cased",
    "http://[FE80::1]:9000/b",
    {
      scheme: "http",
      host: "[fe80::1]",
      authority: "[FE80::1]:9000",
      port: 9000,
      path: "/b",
      query: "",
    },
  ],
  [
    "an underscore in a host name",
    "https://my_host.internal/x",
    https("my_host.internal", "my_host.internal", "/x"),
  ],
];

describe("parseRawUrl accepts", () => {
  for (const [label, url, expected] of parsed) {
    test(`${label}: ${JSON.stringify(url)}`, () => {
      assert.deepEqual(parseRawUrl(url), expected);
    });
  }
});

const rejected: [label: string, url: string, fragment: string][] = [
  ["no scheme", "example.com/b/k", "url:"],
  ["a scheme-relative URL", "//example.com/b/k", "url:"],
  ["ftp", "ftp://example.com/b/k", "url:"],
  ["a fragment", "https://example.com/b/k#frag", "without a fragment"],
  ["a fragment after a query", "https://example.com/b/k?x=1#frag", "without a fragment"],
  ["user info", "https://user@example.com/b/k", "user info is not allowed"],
  ["user and password", "https://user:pw@example.com/b/k", "user info is not allowed"],
  ["an empty host", "https:///b/k", "bad host"],
  ["port 0", "http://example.com:0/", "bad host"],
  ["port 65536", "http://example.com:65536/", "bad host"],
  ["a six-digit port", "http://example.com:100000/", "bad host"],
  ["an empty port", "http://example.com:/", "bad host"],
  ["a non-numeric port", "http://example.com:http/", "bad host"],
  ["an IPv6 literal without brackets", "http://::1/", "bad host"],
  ["a percent-encoded host", "http://ex%61mple.com/", "bad host"],
  ["a newline in the path", "https://example.com/b/k\n", "control characters"],
  ["a carriage return in the query", "https://example.com/b?x=\r1", "control characters"],
  ["a tab", "https://example.com/b/\tk", "control characters"],
  ["a NUL", "https://example.com/b/\u0000", "control characters"],
  ["DEL", "https://example.com/b/\u007f", "control characters"],
  ["the empty string", "", "url:"],
];

describe("parseRawUrl rejects", () => {
  for (const [label, url, fragment] of rejected) {
    test(`${label}: ${JSON.stringify(url)}`, () => {
      assert.throws(() => parseRawUrl(url), domainError("invalid_argument", "url:", fragment));
    });
  }
});

const decoded: [label: string, input: string, expected: string][] = [
  ["plain text unchanged", "plain/text", "plain/text"],
  ["an escape", "%41", "A"],
  ["lower-case hex", "%2e%2e", ".."],
  ["upper-case hex", "%2E%2E", ".."],
  ["%2F becomes /", "a%2Fb", "a/b"],
  ["%20 becomes a space", "a%20b", "a b"],
  ["UTF-8 sequence", "caf%C3%A9", "café"],
  ["three-byte UTF-8", "%E2%82%AC", "€"],
  ["'+' stays '+'", "a+b", "a+b"],
  ["%2B becomes '+'", "a%2Bb", "a+b"],
  ["a lone %", "100%", "100%"],
  ["a % with one hex digit", "%4", "%4"],
  ["non-hex after %", "%zz", "%zz"],
  ["%% stays", "a%%41", "a%A"],
  ["a lone continuation byte stays", "%80", "%80"],
  ["a truncated UTF-8 sequence stays", "%E2%82", "%E2%82"],
  ["%FF stays", "x%FFy", "x%FFy"],
  ["a malformed escape does not stop later ones", "%zz/%41", "%zz/A"],
  // Only the malformed byte should stay: %41 is a well-formed escape.
  ["a valid escape next to a malformed one is still decoded", "%41%E2", "A%E2"],
  ["four-byte UTF-8", "%F0%9F%98%80", "😀"],
  ["an overlong form stays", "%C0%AF", "%C0%AF"],
  ["an encoded UTF-16 surrogate stays", "%ED%A0%80", "%ED%A0%80"],
  ["above U+10FFFF stays", "%F4%90%80%80", "%F4%90%80%80"],
  ["a truncated sequence before ASCII", "%E2%82%41", "%E2%82A"],
  ["a trailing %", "%41%", "A%"],
  ["%00 decodes", "%00", "\u0000"],
];

describe("percentDecode", () => {
  for (const [label, input, expected] of decoded) {
    test(`${label}: ${JSON.stringify(input)}`, () => {
      assert.equal(percentDecode(input), expected);
    });
  }
});

/** The decoder before it was made linear: the longest run of 1-4 escapes decodeURIComponent takes. */
function referenceDecode(text: string): string {
  return text.replace(/(%[0-9a-f]{2})+/gi, (run) => {
    const escapes = run.match(/%[0-9a-f]{2}/gi) ?? [];
    let out = "";
    for (let i = 0; i < escapes.length; ) {
      let taken = 0;
      for (let n = Math.min(4, escapes.length - i); n > 0 && taken === 0; n--) {
        try {
          out += decodeURIComponent(escapes.slice(i, i + n).join(""));
          taken = n;
        } catch {
          // shorter, or not decodable
        }
      }
      if (taken === 0) {
        out += escapes[i];
        taken = 1;
      }
      i += taken;
    }
    return out;
  });
}

describe("percentDecode agrees with decodeURIComponent", () => {
  const piece = fc.oneof(
    fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, "0")}`),
    fc.constantFrom("%", "%4", "%zz", "a", "/", "é", "😀", "+", "%E2%82", "%F0%9F%98"),
  );
  test("on any mix of escapes, partial escapes and text (fixed seed)", () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const text = pieces.join("");
        assert.equal(percentDecode(text), referenceDecode(text));
      }),
      { seed: 20, numRuns: 2000 },
    );
  });
});

const encoded: [label: string, input: string, expected: string][] = [
  ["unreserved kept", "AZaz09-._~", "AZaz09-._~"],
  ["space", "a b", "a%20b"],
  ["slash", "a/b", "a%2Fb"],
  ["plus", "a+b", "a%2Bb"],
  ["sub-delims encoded", "!$&'()*+,;=", "%21%24%26%27%28%29%2A%2B%2C%3B%3D"],
  ["gen-delims encoded", ":/?#[]@", "%3A%2F%3F%23%5B%5D%40"],
  ["percent", "100%", "100%25"],
  ["UTF-8", "café", "caf%C3%A9"],
  ["four-byte UTF-8", "😀", "%F0%9F%98%80"],
  ["upper-case hex digits", "\u00ff", "%C3%BF"],
  ["empty", "", ""],
];

describe("uriEncode", () => {
  for (const [label, input, expected] of encoded) {
    test(`${label}: ${JSON.stringify(input)}`, () => {
      assert.equal(uriEncode(input), expected);
    });
  }
});

const queries: [label: string, query: string, expected: [string, string][]][] = [
  ["empty", "", []],
  ["a key without =", "uploads", [["uploads", ""]]],
  ["a key with an empty value", "uploads=", [["uploads", ""]]],
  ["an empty key", "=v", [["", "v"]]],
  ["key and value", "prefix=data%2F", [["prefix", "data/"]]],
  [
    "repeats kept in order",
    "a=1&b=2&a=3",
    [
      ["a", "1"],
      ["b", "2"],
      ["a", "3"],
    ],
  ],
  [
    "empty parts skipped",
    "a&&b&",
    [
      ["a", ""],
      ["b", ""],
    ],
  ],
  ["only &", "&", []],
  ["'=' inside a value", "a=b=c", [["a", "b=c"]]],
  ["'+' is not a space", "q=a+b", [["q", "a+b"]]],
  ["encoded key", "response-content-type%3D=x", [["response-content-type=", "x"]]],
  ["malformed escape kept", "q=100%", [["q", "100%"]]],
  [
    "multipart upload part",
    "partNumber=1&uploadId=abc%2Bdef",
    [
      ["partNumber", "1"],
      ["uploadId", "abc+def"],
    ],
  ],
];

describe("queryParams", () => {
  for (const [label, query, expected] of queries) {
    test(`${label}: ${JSON.stringify(query)}`, () => {
      assert.deepEqual(queryParams(query), expected);
    });
  }
});

const once: [label: string, path: string, expected: string][] = [
  ["root", "/", "/"],
  ["plain", "/b/k", "/b/k"],
  ["a raw space encoded", "/b/a b", "/b/a%20b"],
  ["an encoded space not encoded again", "/b/a%20b", "/b/a%20b"],
  ["%2F stays inside its segment", "/b/a%2Fb", "/b/a%2Fb"],
  ["dot segments kept", "/b/./a/../k", "/b/./a/../k"],
  ["encoded dot segments decoded, kept", "/b/%2E%2E/k", "/b/../k"],
  ["UTF-8 encoded", "/b/café", "/b/caf%C3%A9"],
  ["encoded UTF-8 unchanged", "/b/caf%C3%A9", "/b/caf%C3%A9"],
  ["lower-case escapes upper-cased", "/b/caf%c3%a9", "/b/caf%C3%A9"],
  ["'+' encoded", "/b/a+b", "/b/a%2Bb"],
  ["an over-encoded unreserved character decoded", "/b/%7Euser", "/b/~user"],
  ["empty segments kept", "/b//k/", "/b//k/"],
  ["a lone % encoded", "/b/100%", "/b/100%25"],
  ["sub-delims encoded", "/b/a=b&c", "/b/a%3Db%26c"],
];

describe("encodeOnce", () => {
  for (const [label, path, expected] of once) {
    test(`${label}: ${JSON.stringify(path)}`, () => {
      assert.equal(encodeOnce(path), expected);
    });
  }
});

describe("hostile URLs cost linear time", () => {
  /**
   * Milliseconds `fn` takes, best of three (a GC pause is not the code's
   * cost); one run when that is already slow, so a regression fails quickly.
   */
  function timed(fn: () => void): number {
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 3 && (i === 0 || best < 500); i++) {
      const started = performance.now();
      fn();
      best = Math.min(best, performance.now() - started);
    }
    return best;
  }

  test("percentDecode: a megabyte of undecodable escapes takes milliseconds, and twice as many about twice as long", () => {
    const small = "%ff".repeat(170_000);
    const large = "%ff".repeat(340_000);
    const largeMs = timed(() => percentDecode(large));
    const smallMs = timed(() => percentDecode(small));
    // Before: four throwing decodeURIComponent calls per escape, ~30 s for 1 MB.
    assert.ok(largeMs < 500, `1 MB of %ff decoded in ${largeMs.toFixed(1)} ms`);
    assert.ok(
      largeMs < 4 * smallMs + 20,
      `linear: ${smallMs.toFixed(1)} ms, then ${largeMs.toFixed(1)} ms`,
    );
    assert.equal(percentDecode(large), large, "undecodable escapes stay as written");
  });

  test("percentDecode: truncated and mixed sequences in bulk are linear too", () => {
    const mixed = "%e2%82%ac%e2%82%f0%9f%98%80%c3%ed%a0%80".repeat(20_000);
    const ms = timed(() => percentDecode(mixed));
    assert.ok(ms < 500, `${mixed.length} characters decoded in ${ms.toFixed(1)} ms`);
    assert.equal(percentDecode("%e2%82%ac%e2%82%f0%9f%98%80%c3%ed%a0%80"), "€%e2%82😀%c3%ed%a0%80");
  });

  test(`parseRawUrl: more than ${MAX_URL_BYTES} bytes is invalid_argument, at once`, () => {
    const huge = `https://s3.amazonaws.com/b/${"%ff".repeat(340_000)}`;
    assert.ok(timed(() => assert.throws(() => parseRawUrl(huge))) < 50);
    assert.throws(
      () => parseRawUrl(huge),
      domainError("invalid_argument", "url:", `${MAX_URL_BYTES} bytes`),
    );
    const path = (n: number) => `/b/${"k".repeat(n)}`;
    const base = "https://s3.amazonaws.com";
    assert.doesNotThrow(() => parseRawUrl(`${base}${path(MAX_URL_BYTES - base.length - 3)}`));
    assert.throws(
      () => parseRawUrl(`${base}${path(MAX_URL_BYTES - base.length - 2)}`),
      domainError("invalid_argument", "url:"),
    );
    // Bytes, not characters: 3000 "€" are 9000 bytes.
    assert.throws(
      () => parseRawUrl(`${base}/b/${"€".repeat(3000)}`),
      domainError("invalid_argument", "bytes"),
    );
  });

  test("parseRawUrl: a long authority with a fragment fails fast (no quadratic backtracking)", () => {
    const url = `https://${"a".repeat(MAX_URL_BYTES - 10)}#`;
    const ms = timed(() => assert.throws(() => parseRawUrl(url), domainError("invalid_argument")));
    // Before: ~180 ms at 8 KB and minutes at 300 KB.
    assert.ok(ms < 50, `rejected in ${ms.toFixed(1)} ms`);
  });
});

describe("parseRawUrl never quotes the URL", () => {
  const MARKER = "MARKERs3cr3tV4lue";
  for (const url of [
    `https://AKIAX:${MARKER}@b.s3.amazonaws.com/k`,
    `https://${MARKER}@b.s3.amazonaws.com/k`,
    `https://b.s3.amazonaws.com:${MARKER}/k`,
    `https://${MARKER}%41.example.com/k`,
    `https://b.s3.amazonaws.com/${MARKER}#frag`,
  ]) {
    test(JSON.stringify(url), () => {
      assert.throws(
        () => parseRawUrl(url),
        (err: unknown) => {
          domainError("invalid_argument", "url:")(err);
          assert.ok(!(err as Error).message.includes(MARKER), (err as Error).message);
          assert.ok(!(err as Error).message.includes("AKIAX"), (err as Error).message);
          return true;
        },
      );
    });
  }
});
