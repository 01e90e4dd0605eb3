/**
 * One allowed_hosts entry, read: `host`, `*.suffix`, an IP literal (IPv6 in
 * brackets), each optionally behind `http://`, which lets ForwardRequest use
 * plain http to it (an IP literal allows http by itself).
 */
export interface HostPattern {
  /** Lower-case, without `http://` and without a trailing dot. */
  pattern: string;
  wildcard: boolean;
  /** An IP literal, unbracketed (e.g. "10.0.0.5", "fd00::1"). */
  ip: string | undefined;
  httpAllowed: boolean;
}

export const HTTP_PREFIX = "http://";

export function readHostPattern(entry: string): HostPattern {
  const http = entry.toLowerCase().startsWith(HTTP_PREFIX);
  const pattern = normalizeHost(http ? entry.slice(HTTP_PREFIX.length) : entry);
  const ip = ipLiteral(pattern);
  return { pattern, wildcard: pattern.startsWith("*."), ip, httpAllowed: http || ip !== undefined };
}

/** Lower case, one trailing dot dropped: `Example.COM.` and `example.com` are one host. */
export function normalizeHost(host: string): string {
  const h = host.toLowerCase();
  return h.endsWith(".") ? h.slice(0, -1) : h;
}

/**
 * The entry of `allowed` that `host` matches, if any. `*.example.com`
 * matches deeper subdomains only (not example.com itself); case and a
 * trailing dot do not count; the port is not part of the host.
 */
export function matchHost(allowed: readonly string[], host: string): HostPattern | undefined {
  const h = normalizeHost(host);
  for (const entry of allowed) {
    const p = readHostPattern(entry);
    const hit = p.wildcard
      ? h.endsWith(p.pattern.slice(1)) && h.length > p.pattern.length - 1
      : h === p.pattern;
    if (hit) return p;
  }
  return undefined;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const BRACKETED_IPV6 = /^\[([0-9a-f:.]+)\]$/;

/** The address an IP-literal host names (IPv6 unbracketed), else undefined. */
export function ipLiteral(host: string): string | undefined {
  if (IPV4.test(host)) return host;
  return BRACKETED_IPV6.exec(host)?.[1];
}
