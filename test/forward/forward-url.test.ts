import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DomainError } from "../../src/core/errors.js";
import { readForwardTarget } from "../../src/forward/forward-url.js";

const read = (url: string, hosts: string[]) => readForwardTarget(url, hosts, "ns/cred");
const code = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof DomainError, String(e));
    return `${e.code} ${e.message}`;
  }
  return "ok";
};

describe("readForwardTarget", () => {
  test("https to an allowed host; the default port is left out of the URL signed", () => {
    const t = read("https://API.Example.com:443/v1/a%20b?x=1", ["api.example.com"]);
    assert.equal(t.scheme, "https");
    assert.equal(t.host, "api.example.com");
    assert.equal(t.port, 443);
    assert.equal(t.path, "/v1/a%20b");
    assert.equal(t.query, "x=1");
    assert.equal(t.url, "https://api.example.com/v1/a%20b?x=1");
  });

  test("another port stays in the URL", () => {
    assert.equal(
      read("https://a.example.com:8443/", ["*.example.com"]).url,
      "https://a.example.com:8443/",
    );
  });

  test("a trailing dot names the same host, on either side", () => {
    assert.equal(read("https://api.example.com./x", ["api.example.com"]).host, "api.example.com");
    assert.equal(read("https://api.example.com/x", ["API.example.com."]).host, "api.example.com");
  });

  test("an internationalized host is matched in its ASCII form", () => {
    const t = read("https://bücher.example/x", ["xn--bcher-kva.example"]);
    assert.equal(t.host, "xn--bcher-kva.example");
    assert.match(
      code(() => read("https://bücher.example/x", ["buecher.example"])),
      /HostNotAllowed/,
    );
  });

  test("plain http only behind http:// or to an IP literal", () => {
    assert.match(
      code(() => read("http://api.example.com/", ["api.example.com"])),
      /SchemeNotAllowed/,
    );
    assert.equal(read("http://api.example.com/", ["http://api.example.com"]).port, 80);
    assert.equal(read("http://10.0.0.5:8080/", ["10.0.0.5"]).scheme, "http");
    assert.equal(read("http://[fd00::1]/", ["[fd00::1]"]).host, "[fd00::1]");
  });

  test("the IP literals listed are returned unbracketed, whatever host the URL names", () => {
    const t = read("https://api.example.com/", [
      "api.example.com",
      "10.0.0.5",
      "[fd00::1]",
      "http://192.168.1.2",
    ]);
    assert.deepEqual([...t.listedAddresses].sort(), ["10.0.0.5", "192.168.1.2", "fd00::1"]);
  });

  test("refusals name the rule or field, never the URL", () => {
    for (const [url, expected] of [
      ["https://evil.example.org/", /permission_denied HostNotAllowed/],
      ["https://user:hunter2@api.example.com/", /invalid_argument url: user info/],
      ["ftp://api.example.com/", /invalid_argument/],
      ["https://api.example.com/#frag", /invalid_argument/],
    ] as const) {
      const got = code(() => read(url, ["api.example.com"]));
      assert.match(got, expected, url);
      assert.ok(!got.includes("hunter2") && !got.includes("evil"), got);
    }
  });
});

describe("readForwardTarget: what goes on the wire", () => {
  test("spaces and non-ASCII in path and query are percent-encoded as fetch would; escapes stay", () => {
    const t = read("https://a.example.com/data/hello world/ü%2F?q=a b&x=%41", ["a.example.com"]);
    assert.equal(t.path, "/data/hello%20world/%C3%BC%2F");
    assert.equal(t.query, "q=a%20b&x=%41");
    assert.equal(t.url, "https://a.example.com/data/hello%20world/%C3%BC%2F?q=a%20b&x=%41");
  });
});
