import assert from "node:assert/strict";
import { networkInterfaces } from "node:os";
import { describe, test } from "node:test";
import { isDomainError } from "../../src/core/errors.js";
import { resolveTarget, type TargetRules } from "../../src/forward/resolve-target.js";

type Answer = { address: string; family: number }[];

function rules(
  answer: Answer | Error,
  extra: Partial<TargetRules> = {},
): TargetRules & { lookups: string[] } {
  const lookups: string[] = [];
  return {
    listedAddresses: new Set(),
    allowPrivate: false,
    ownListeners: [],
    lookup: async (host) => {
      lookups.push(host);
      if (answer instanceof Error) throw answer;
      return answer;
    },
    lookups,
    ...extra,
  };
}

const v4 = (address: string) => ({ address, family: 4 });
const v6 = (address: string) => ({ address, family: 6 });

async function refused(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isDomainError(err), `a DomainError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  });
}

describe("resolveTarget", () => {
  test("a name resolving to public addresses: the first one, looked up once", async () => {
    const r = rules([v6("2606:4700::1111"), v4("93.184.216.34")]);
    assert.deepEqual(await resolveTarget("api.example.com", 443, r), {
      address: "2606:4700::1111",
      family: 6,
    });
    assert.deepEqual(r.lookups, ["api.example.com"]);
  });

  test("one private address among public ones refuses the name, naming the class but neither host nor address", async () => {
    const r = rules([v4("93.184.216.34"), v4("10.1.2.3"), v4("8.8.8.8")]);
    await refused(
      resolveTarget("evil.example.com", 443, r),
      "permission_denied",
      /^AddressNotAllowed: .*private address/,
    );
    await assert.rejects(resolveTarget("evil.example.com", 443, r), (err: Error) => {
      assert.doesNotMatch(err.message, /evil|10\.1\.2\.3|93\.184/);
      return true;
    });
  });

  for (const [address, cls] of [
    ["127.0.0.1", "loopback"],
    ["::1", "loopback"],
    ["169.254.169.254", "link-local"],
    ["fe80::1", "link-local"],
    ["::ffff:169.254.169.254", "link-local"],
    ["64:ff9b::a9fe:a9fe", "link-local"],
    ["fd00::1", "private"],
    ["0.0.0.0", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["240.0.0.1", "reserved"],
  ] as const) {
    test(`a name resolving to ${address} is refused as ${cls}`, async () => {
      const r = rules([address.includes(":") ? v6(address) : v4(address)]);
      await refused(
        resolveTarget("a.example.com", 443, r),
        "permission_denied",
        new RegExp(`a ${cls} address`),
      );
    });
  }

  test("an IP literal is checked without a lookup; bracketed IPv6 too", async () => {
    const r = rules([]);
    assert.deepEqual(await resolveTarget("8.8.8.8", 443, r), { address: "8.8.8.8", family: 4 });
    assert.deepEqual(await resolveTarget("[2001:4860:4860::8888]", 443, r), {
      address: "2001:4860:4860::8888",
      family: 6,
    });
    await refused(resolveTarget("[::1]", 443, r), "permission_denied", /loopback/);
    await refused(resolveTarget("127.0.0.1", 443, r), "permission_denied", /loopback/);
    assert.deepEqual(r.lookups, []);
  });

  test("a literal listed in allowed_hosts is allowed, in any spelling; other private addresses still are not", async () => {
    const r = rules([v4("10.0.0.5")], {
      listedAddresses: new Set(["10.0.0.5", "fd00::7", "127.0.0.1"]),
    });
    assert.equal((await resolveTarget("internal.example.com", 80, r)).address, "10.0.0.5");
    assert.equal((await resolveTarget("[FD00:0::7]", 80, r)).address, "FD00:0::7");
    assert.equal((await resolveTarget("::ffff:127.0.0.1", 80, r)).address, "::ffff:127.0.0.1");
    await refused(resolveTarget("10.0.0.6", 80, r), "permission_denied", /private/);
    await refused(
      resolveTarget(
        "two.example.com",
        80,
        rules([v4("10.0.0.5"), v4("10.0.0.6")], { listedAddresses: new Set(["10.0.0.5"]) }),
      ),
      "permission_denied",
      /private/,
    );
  });

  test("listing never opens unspecified or multicast addresses", async () => {
    const r = rules([], { listedAddresses: new Set(["0.0.0.0", "::", "224.0.0.1"]) });
    await refused(resolveTarget("0.0.0.0", 80, r), "permission_denied", /unspecified/);
    await refused(resolveTarget("::", 80, r), "permission_denied", /unspecified/);
    await refused(resolveTarget("224.0.0.1", 80, r), "permission_denied", /multicast/);
  });

  test("allowPrivate opens private, loopback and link-local, not unspecified, multicast or reserved", async () => {
    const r = rules([v4("192.168.1.1"), v4("127.0.0.1"), v6("fe80::1"), v4("8.8.8.8")], {
      allowPrivate: true,
    });
    assert.equal((await resolveTarget("lan.example.com", 443, r)).address, "192.168.1.1");
    await refused(resolveTarget("0.0.0.0", 443, r), "permission_denied", /unspecified/);
    await refused(resolveTarget("ff02::1", 443, r), "permission_denied", /multicast/);
    await refused(resolveTarget("192.0.2.1", 443, r), "permission_denied", /reserved/);
  });

  test("the daemon's own listeners are refused even when listed and with allowPrivate; another port is not", async () => {
    const own = { ownListeners: [{ address: "127.0.0.1", port: 7000 }], allowPrivate: true };
    const r = rules([v4("127.0.0.1")], { ...own, listedAddresses: new Set(["127.0.0.1"]) });
    await refused(resolveTarget("localhost", 7000, r), "permission_denied", /own listeners/);
    await refused(resolveTarget("::ffff:127.0.0.1", 7000, r), "permission_denied", /own listeners/);
    assert.equal((await resolveTarget("localhost", 7001, r)).address, "127.0.0.1");
  });

  test("a listener on 0.0.0.0 or :: covers loopback, every interface address and the unspecified address", async () => {
    const interfaceAddresses = Object.values(networkInterfaces())
      .flatMap((list) => list ?? [])
      .map((i) => i.address);
    for (const wildcard of ["0.0.0.0", "::"]) {
      const base = { ownListeners: [{ address: wildcard, port: 8080 }], allowPrivate: true };
      for (const address of ["127.0.0.1", "127.9.9.9", "::1", ...interfaceAddresses]) {
        const r = rules([], { ...base, listedAddresses: new Set([address]) });
        await refused(resolveTarget(address, 8080, r), "permission_denied", /own listeners/);
      }
      await refused(
        resolveTarget("0.0.0.0", 8080, rules([], base)),
        "permission_denied",
        /own listeners/,
      );
      assert.equal((await resolveTarget("127.0.0.1", 8081, rules([], base))).address, "127.0.0.1");
      assert.equal(
        (await resolveTarget("10.255.0.1", 8080, rules([], base))).address,
        "10.255.0.1",
      );
    }
  });

  test("a name that does not resolve, or resolves to nothing, is unavailable without naming it", async () => {
    const notFound = Object.assign(new Error("getaddrinfo ENOTFOUND nowhere.invalid"), {
      code: "ENOTFOUND",
    });
    await refused(
      resolveTarget("nowhere.invalid", 443, rules(notFound)),
      "unavailable",
      /^AddressNotResolved: [^.]*$/,
    );
    await refused(
      resolveTarget("empty.example.com", 443, rules([])),
      "unavailable",
      /AddressNotResolved/,
    );
  });

  test("the default lookup is node:dns: localhost resolves and is refused as loopback", async () => {
    await refused(
      resolveTarget("localhost", 443, {
        listedAddresses: new Set(),
        allowPrivate: false,
        ownListeners: [],
      }),
      "permission_denied",
      /loopback/,
    );
    await refused(
      resolveTarget("pinned.invalid", 443, {
        listedAddresses: new Set(),
        allowPrivate: false,
        ownListeners: [],
      }),
      "unavailable",
      /AddressNotResolved/,
    );
  });
});
