/**
 * What kind of address an IP is, for the forward guard (docs/SECURITY.md):
 * anything but "public" is refused unless a rule allows it. Pure.
 *
 * IPv6 forms that carry an IPv4 address are classified by that address:
 * IPv4-mapped ::ffff:a.b.c.d (the kernel connects to a.b.c.d), NAT64
 * 64:ff9b::/96 (the NAT64 gateway does) and 6to4 2002:AABB:CCDD::/48 (a relay
 * does). Text net.isIP does not accept is "reserved": fail closed.
 */
import { BlockList, isIP } from "node:net";

export type AddressClass =
  | "public"
  | "loopback"
  | "link-local"
  | "private"
  | "unspecified"
  | "multicast"
  | "reserved";

type Ranges = readonly (readonly [prefix: string, bits: number])[];

const V4: readonly (readonly [AddressClass, Ranges])[] = [
  ["unspecified", [["0.0.0.0", 8]]], // "this network": 0.0.0.0 reaches the local host
  ["loopback", [["127.0.0.0", 8]]],
  ["link-local", [["169.254.0.0", 16]]], // cloud metadata services (169.254.169.254)
  [
    "private",
    [
      ["10.0.0.0", 8],
      ["172.16.0.0", 12],
      ["192.168.0.0", 16],
      ["100.64.0.0", 10], // carrier-grade NAT: inside a provider's network
      ["198.18.0.0", 15], // benchmarking (RFC 2544): lab networks
    ],
  ],
  ["multicast", [["224.0.0.0", 4]]],
  [
    "reserved",
    [
      ["240.0.0.0", 4], // includes 255.255.255.255 (limited broadcast)
      ["192.0.0.0", 24], // IETF protocol assignments (NAT64 discovery, DS-Lite)
      ["192.0.2.0", 24], // documentation (TEST-NET-1, -2, -3)
      ["198.51.100.0", 24],
      ["203.0.113.0", 24],
      ["192.88.99.0", 24], // deprecated 6to4 relay anycast
    ],
  ],
];

const V6: readonly (readonly [AddressClass, Ranges])[] = [
  ["unspecified", [["::", 128]]],
  ["loopback", [["::1", 128]]],
  ["link-local", [["fe80::", 10]]],
  [
    "private",
    [
      ["fc00::", 7], // unique local
      ["fec0::", 10], // deprecated site-local
      ["64:ff9b:1::", 48], // local-use NAT64 (RFC 8215): the embedding is the operator's
    ],
  ],
  ["multicast", [["ff00::", 8]]],
  [
    "reserved",
    [
      ["::", 96], // deprecated IPv4-compatible (after :: and ::1 above)
      ["100::", 64], // discard-only
      ["2001::", 32], // Teredo: the client's IPv4 address is obfuscated, a relay connects
      ["2001:2::", 48], // benchmarking
      ["2001:10::", 28], // ORCHID, ORCHIDv2: not routable
      ["2001:20::", 28],
      ["2001:db8::", 32], // documentation
      ["3fff::", 20], // documentation (RFC 9637)
    ],
  ],
];

function blockLists(
  table: readonly (readonly [AddressClass, Ranges])[],
  type: "ipv4" | "ipv6",
): [AddressClass, BlockList][] {
  return table.map(([cls, ranges]) => {
    const list = new BlockList();
    for (const [prefix, bits] of ranges) list.addSubnet(prefix, bits, type);
    return [cls, list];
  });
}

const V4_LISTS = blockLists(V4, "ipv4");
const V6_LISTS = blockLists(V6, "ipv6");

/** The class of an IPv4 or IPv6 address (a zone id, "fe80::1%eth0", is ignored). */
export function classifyAddress(ip: string): AddressClass {
  const bare = ip.includes("%") ? ip.slice(0, ip.indexOf("%")) : ip;
  const family = isIP(bare);
  if (family === 4) return classifyV4(bare);
  if (family !== 6) return "reserved";
  const embedded = embeddedIpv4(bare);
  if (embedded !== undefined) return classifyV4(embedded);
  for (const [cls, list] of V6_LISTS) if (list.check(bare, "ipv6")) return cls;
  // Only 2000::/3 is global unicast; the rest of the space is unassigned.
  return (ipv6Words(bare)[0] ?? 0) >> 13 === 1 ? "public" : "reserved";
}

function classifyV4(ip: string): AddressClass {
  for (const [cls, list] of V4_LISTS) if (list.check(ip, "ipv4")) return cls;
  return "public";
}

/**
 * The IPv4 address inside an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4
 * address, which is where a connection to it goes; undefined for other IPv6.
 */
export function embeddedIpv4(ipv6: string): string | undefined {
  const w = ipv6Words(ipv6);
  const zeros = (from: number, to: number) => w.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && w[5] === 0xffff) return v4FromWords(w[6] ?? 0, w[7] ?? 0);
  if (w[0] === 0x64 && w[1] === 0xff9b && zeros(2, 6)) return v4FromWords(w[6] ?? 0, w[7] ?? 0);
  if (w[0] === 0x2002) return v4FromWords(w[1] ?? 0, w[2] ?? 0);
  return undefined;
}

function v4FromWords(hi: number, lo: number): string {
  return [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join(".");
}

/** The eight 16-bit words of an IPv6 address net.isIP accepts (no zone id). */
export function ipv6Words(ipv6: string): number[] {
  let text = ipv6.toLowerCase();
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  const last = text.slice(lastColon + 1);
  if (last.includes(".")) {
    const [a = 0, b = 0, c = 0, d = 0] = last.split(".").map(Number);
    tail.push((a << 8) | b, (c << 8) | d);
    text = `${text.slice(0, lastColon + 1)}0`; // a placeholder word, dropped below
  }
  const parse = (part: string) =>
    part === "" ? [] : part.split(":").map((h) => Number.parseInt(h, 16));
  const [head = "", rest] = text.split("::");
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  if (tail.length > 0) (rest === undefined ? left : right).pop();
  const fill = 8 - tail.length - left.length - right.length;
  return [...left, ...new Array<number>(Math.max(fill, 0)).fill(0), ...right, ...tail];
}

/**
 * One spelling per address, for comparing: IPv4 as is, IPv4-mapped IPv6 as
 * its IPv4 address, other IPv6 as eight lower-case hex words.
 */
export function canonicalAddress(ip: string): string {
  const bare = ip.includes("%") ? ip.slice(0, ip.indexOf("%")) : ip;
  const family = isIP(bare);
  if (family !== 6) return bare;
  const w = ipv6Words(bare);
  if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff)
    return v4FromWords(w[6] ?? 0, w[7] ?? 0);
  return w.map((x) => x.toString(16)).join(":");
}
