/**
 * Request guards for the credential endpoints that ordinary SDKs call without
 * authentication of their own (IMDS, container credentials). Each guard is a
 * pure function of the request headers and the socket's addresses: it returns
 * undefined to let the request on, or a short reason (safe to send and to log,
 * never echoing the request) for a 403.
 */
import type { IncomingHttpHeaders } from "node:http";
import { BlockList, isIPv4, isIPv6 } from "node:net";

/** What a guard reads of the connection; node's net.Socket satisfies it. */
export interface PeerInfo {
  readonly remoteAddress?: string | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
}

/** undefined: the request may go on; a string: why it is refused (403). */
export type Guard = (headers: IncomingHttpHeaders, peer: PeerInfo) => string | undefined;

/** The address a listener is bound to, as `server.address()` reports it. */
export interface BoundAddress {
  readonly host: string;
  readonly port: number;
}

/** Loopback ranges; IPv4-mapped IPv6 (::ffff:127.x) matches the IPv4 rule. Never changed after this. */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** True for 127.0.0.0/8, ::1, ::ffff:127.x (brackets allowed) and the name "localhost". */
export function isLoopbackAddress(address: string): boolean {
  const a = unbracket(address).toLowerCase();
  if (a === "localhost" || a === "::1") return true;
  // Fast path for what sockets report on every request: no BlockList lookup.
  if (a.startsWith("127.")) return isIPv4(a);
  if (a.startsWith("::ffff:127.")) return isIPv4(a.slice(7));
  if (isIPv4(a)) return LOOPBACK.check(a, "ipv4");
  if (isIPv6(a)) return LOOPBACK.check(a, "ipv6");
  return false;
}

/** True for the wildcard addresses 0.0.0.0 and ::, which listen on every interface. */
export function isUnspecifiedAddress(address: string): boolean {
  const a = unbracket(address);
  return a === "0.0.0.0" || (isIPv6(a) && /^[0:]+$/.test(a));
}

/** An address as it appears in a Host header: IPv6 in brackets, lower case. */
export function hostForm(address: string): string {
  const a = unbracket(address).toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped?.[1] !== undefined) return mapped[1];
  return isIPv6(a) ? `[${a}]` : a;
}

/**
 * The Host header must name this listener: its bound address with its port,
 * `localhost` (bare or with the port), or one of `extraHosts` (bare, with the
 * port, or with :80 — the link-local addresses SDKs use, reached through a
 * redirect: 169.254.169.254 for IMDS, 169.254.170.2 for container
 * credentials). On a wildcard bind the address the client connected to
 * counts as the bound address.
 *
 * Threat: DNS rebinding. A web page on evil.com re-resolves its own name to
 * 127.0.0.1 and reads the answer as same-origin; its requests still carry
 * `Host: evil.com[:port]`, which this refuses.
 */
export function hostGuard(bound: BoundAddress, extraHosts: readonly string[]): Guard {
  const port = bound.port;
  const allowed = new Set<string>();
  const own = hostForm(bound.host);
  allowed.add(`${own}:${port}`);
  if (port === 80) allowed.add(own);
  for (const name of ["localhost", ...extraHosts.map(hostForm)]) {
    allowed.add(name);
    allowed.add(`${name}:${port}`);
    allowed.add(`${name}:80`);
  }
  const wildcard = isUnspecifiedAddress(bound.host);
  return (headers, peer) => {
    const host = headers.host?.toLowerCase();
    if (host === undefined || host === "") return "missing Host header";
    if (allowed.has(host)) return undefined;
    if (wildcard && peer.localAddress !== undefined && peer.localPort !== undefined) {
      const local = hostForm(peer.localAddress);
      if (host === `${local}:${peer.localPort}`) return undefined;
      if (peer.localPort === 80 && host === local) return undefined;
    }
    return "Host header not allowed";
  };
}

/**
 * Refuses any request carrying Origin, Referer or Sec-Fetch-Site: headers
 * that browsers add and that SDKs, the AWS CLI and curl never send.
 *
 * Threat: browser-borne SSRF. A page (or a server-side fetch driven by a
 * page) that gets a browser to request a loopback or link-local URL.
 */
export const browserGuard: Guard = (headers) =>
  headers.origin !== undefined ||
  headers.referer !== undefined ||
  headers["sec-fetch-site"] !== undefined
    ? "browser requests are not served"
    : undefined;

/**
 * Refuses any request carrying X-Forwarded-For or Forwarded, as EC2 does for
 * token PUTs.
 *
 * Threat: an open or misconfigured reverse proxy on the host (or in a
 * container) relaying outside requests to the metadata endpoint; proxies add
 * these headers, SDKs never do, so a relayed token request gets no token.
 */
export const forwardedGuard: Guard = (headers) =>
  headers["x-forwarded-for"] !== undefined || headers.forwarded !== undefined
    ? "forwarded requests are not served"
    : undefined;

/**
 * When the listener is bound to a loopback address, the peer must be loopback
 * too. A listener bound elsewhere (0.0.0.0, a bridge address for containers)
 * was set so on purpose and accepts any peer.
 *
 * Threat: a loopback-only service reached from outside through a socket that
 * is not what it seems (a forwarded or inherited socket); defence in depth
 * behind the bind address itself.
 */
export function loopbackPeerGuard(bound: BoundAddress): Guard {
  if (!isLoopbackAddress(bound.host)) return () => undefined;
  return (_headers, peer) =>
    peer.remoteAddress !== undefined && isLoopbackAddress(peer.remoteAddress)
      ? undefined
      : "peer is not loopback";
}

/**
 * Every request's guards, in order: loopback peer, Host allow-list, no
 * browser headers. The first refusal wins.
 */
export function requestGuards(bound: BoundAddress, extraHosts: readonly string[]): Guard {
  const guards = [loopbackPeerGuard(bound), hostGuard(bound, extraHosts), browserGuard];
  return (headers, peer) => {
    for (const guard of guards) {
      const reason = guard(headers, peer);
      if (reason !== undefined) return reason;
    }
    return undefined;
  };
}

function unbracket(address: string): string {
  return address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
}
