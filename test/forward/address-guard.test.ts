import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type AddressClass,
  canonicalAddress,
  classifyAddress,
} from "../../src/forward/address-guard.js";

const rows: [ip: string, expected: AddressClass][] = [
  // IPv4: each range's first and last address, and its neighbours outside.
  ["0.0.0.0", "unspecified"],
  ["0.255.255.255", "unspecified"],
  ["1.0.0.0", "public"],
  ["126.255.255.255", "public"],
  ["127.0.0.0", "loopback"],
  ["127.0.0.1", "loopback"],
  ["127.255.255.255", "loopback"],
  ["128.0.0.0", "public"],
  ["169.253.255.255", "public"],
  ["169.254.0.0", "link-local"],
  ["169.254.169.254", "link-local"],
  ["169.254.255.255", "link-local"],
  ["169.255.0.0", "public"],
  ["9.255.255.255", "public"],
  ["10.0.0.0", "private"],
  ["10.255.255.255", "private"],
  ["11.0.0.0", "public"],
  ["172.15.255.255", "public"],
  ["172.16.0.0", "private"],
  ["172.31.255.255", "private"],
  ["172.32.0.0", "public"],
  ["192.167.255.255", "public"],
  ["192.168.0.0", "private"],
  ["192.168.255.255", "private"],
  ["192.169.0.0", "public"],
  ["100.63.255.255", "public"],
  ["100.64.0.0", "private"],
  ["100.127.255.255", "private"],
  ["100.128.0.0", "public"],
  ["198.17.255.255", "public"],
  ["198.18.0.0", "private"],
  ["198.19.255.255", "private"],
  ["198.20.0.0", "public"],
  ["223.255.255.255", "public"],
  ["224.0.0.0", "multicast"],
  ["239.255.255.255", "multicast"],
  ["240.0.0.0", "reserved"],
  ["255.255.255.254", "reserved"],
  ["255.255.255.255", "reserved"],
  ["192.0.0.0", "reserved"],
  ["192.0.0.170", "reserved"],
  ["192.0.1.0", "public"],
  ["192.0.2.1", "reserved"],
  ["198.51.100.7", "reserved"],
  ["203.0.113.255", "reserved"],
  ["192.88.99.1", "reserved"],
  ["8.8.8.8", "public"],
  ["93.184.216.34", "public"],
  // IPv6.
  ["::", "unspecified"],
  ["0:0:0:0:0:0:0:0", "unspecified"],
  ["::1", "loopback"],
  ["0:0:0:0:0:0:0:1", "loopback"],
  ["::2", "reserved"],
  ["fe80::", "link-local"],
  ["fe80::1%eth0", "link-local"],
  ["febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local"],
  ["FE80::ABCD", "link-local"],
  ["fc00::", "private"],
  ["fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private"],
  ["fd12:3456::1", "private"],
  ["fec0::1", "private"],
  ["feff::1", "private"],
  ["ff00::", "multicast"],
  ["ff02::1", "multicast"],
  ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"],
  ["100::1", "reserved"],
  ["2001::1", "reserved"],
  ["2001:db8::1", "reserved"],
  ["2001:10::1", "reserved"],
  ["2001:2::1", "reserved"],
  ["3fff::1", "reserved"],
  ["64:ff9b:1::1", "private"],
  ["4000::1", "reserved"],
  ["1fff:ffff::1", "reserved"],
  ["2001:4860:4860::8888", "public"],
  ["2606:4700::1111", "public"],
  ["3ffe::1", "public"],
  // IPv4-mapped: classified by the embedded address, in every spelling.
  ["::ffff:127.0.0.1", "loopback"],
  ["::ffff:7f00:1", "loopback"],
  ["0:0:0:0:0:ffff:7f00:0001", "loopback"],
  ["0:0:0:0:0:ffff:127.0.0.1", "loopback"],
  ["::FFFF:169.254.169.254", "link-local"],
  ["::ffff:a9fe:a9fe", "link-local"],
  ["::ffff:10.1.2.3", "private"],
  ["::ffff:0.0.0.0", "unspecified"],
  ["::ffff:224.0.0.1", "multicast"],
  ["::ffff:255.255.255.255", "reserved"],
  ["::ffff:8.8.8.8", "public"],
  // IPv4-compatible (deprecated): reserved whatever it embeds.
  ["::127.0.0.1", "reserved"],
  ["::8.8.8.8", "reserved"],
  // NAT64 64:ff9b::/96: the gateway connects to the embedded address.
  ["64:ff9b::127.0.0.1", "loopback"],
  ["64:ff9b::7f00:1", "loopback"],
  ["64:ff9b::a9fe:a9fe", "link-local"],
  ["64:ff9b::192.168.1.1", "private"],
  ["64:ff9b::8.8.8.8", "public"],
  ["64:ff9b:0:0:1::8.8.8.8", "reserved"],
  // 6to4: a relay connects to the embedded address.
  ["2002:7f00:1::1", "loopback"],
  ["2002:a9fe:a9fe::", "link-local"],
  ["2002:0a00:0001::5", "private"],
  ["2002:0808:0808::1", "public"],
  // Not an IP address: fail closed.
  ["", "reserved"],
  ["localhost", "reserved"],
  ["127.1", "reserved"],
  ["0x7f.0.0.1", "reserved"],
  ["[::1]", "reserved"],
];

describe("classifyAddress", () => {
  for (const [ip, expected] of rows) {
    test(`${ip || "(empty)"} is ${expected}`, () => {
      assert.equal(classifyAddress(ip), expected);
    });
  }
});

describe("canonicalAddress", () => {
  test("spellings of one address compare equal", () => {
    assert.equal(canonicalAddress("::1"), canonicalAddress("0:0:0:0:0:0:0:1"));
    assert.equal(canonicalAddress("FD00::A"), canonicalAddress("fd00:0::a"));
    assert.equal(canonicalAddress("::ffff:10.0.0.1"), "10.0.0.1");
    assert.equal(canonicalAddress("::ffff:a00:1"), "10.0.0.1");
  });
  test("different addresses differ", () => {
    assert.notEqual(canonicalAddress("::1"), canonicalAddress("::2"));
    assert.notEqual(canonicalAddress("10.0.0.1"), canonicalAddress("10.0.0.2"));
  });
});
