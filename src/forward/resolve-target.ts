/**
 * The forward's address check: resolve the URL's host once, check every
 * address it resolves to, and hand back the one address to connect to, so a
 * second lookup (DNS rebinding) never happens (docs/SECURITY.md).
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { DomainError } from "../core/errors.js";
import { type AddressClass, canonicalAddress, classifyAddress } from "./address-guard.js";

export interface TargetRules {
  /** IP literals the credential's allowed_hosts lists (unbracketed, as net.isIP accepts): allowed even when private/loopback. */
  listedAddresses: ReadonlySet<string>;
  /** serve --forward-allow-private: private, loopback and link-local allowed (the daemon's own listeners never). */
  allowPrivate: boolean;
  /** The daemon's own listeners (API, IMDS, container...): refused always. address may be "0.0.0.0"/"::" meaning every local address (os.networkInterfaces + loopback) on that port. */
  ownListeners: readonly { address: string; port: number }[];
  /** For tests; default node:dns lookup with { all: true, verbatim: true }. */
  lookup?: (host: string) => Promise<{ address: string; family: number }[]>;
}

/** Classes an IP literal listed in allowed_hosts opens; unspecified (the local host by another name) and multicast stay shut. */
const LISTABLE: ReadonlySet<AddressClass> = new Set([
  "loopback",
  "link-local",
  "private",
  "reserved",
]);
/** Classes --forward-allow-private opens. */
const PRIVATE: ReadonlySet<AddressClass> = new Set(["loopback", "link-local", "private"]);

const defaultLookup = (host: string) => dnsLookup(host, { all: true, verbatim: true });

/**
 * Resolves `host` (a name, or an IP literal: bracketed IPv6 allowed) once and
 * checks every address; returns the one address to connect to.
 */
export async function resolveTarget(
  host: string,
  port: number,
  rules: TargetRules,
): Promise<{ address: string; family: 4 | 6 }> {
  const addresses = await resolve(host, rules.lookup ?? defaultLookup);
  const listed = new Set([...rules.listedAddresses].map(canonicalAddress));
  for (const address of addresses) {
    if (isOwnListener(address, port, rules.ownListeners)) {
      throw new DomainError(
        "permission_denied",
        "AddressNotAllowed: the URL's host and port are one of the daemon's own listeners, which a forward never reaches",
      );
    }
    const cls = classifyAddress(address);
    if (cls === "public") continue;
    if (LISTABLE.has(cls) && listed.has(canonicalAddress(address))) continue;
    if (rules.allowPrivate && PRIVATE.has(cls)) continue;
    throw new DomainError("permission_denied", refusal(cls));
  }
  const first = addresses[0] as string;
  return { address: first, family: isIP(first) === 6 ? 6 : 4 };
}

function refusal(cls: AddressClass): string {
  const opens =
    cls === "unspecified" || cls === "multicast"
      ? "no rule allows it"
      : PRIVATE.has(cls)
        ? "list the address as an IP literal in allowed_hosts, or start serve with --forward-allow-private"
        : "list the address as an IP literal in allowed_hosts";
  return `AddressNotAllowed: the URL's host resolves to a ${cls} address; ${opens}`;
}

async function resolve(
  host: string,
  lookup: (host: string) => Promise<{ address: string; family: number }[]>,
): Promise<string[]> {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (isIP(bare) !== 0) return [bare];
  let found: { address: string; family: number }[];
  try {
    found = await lookup(bare);
  } catch (cause) {
    throw new DomainError("unavailable", "AddressNotResolved: the URL's host does not resolve", {
      cause,
    });
  }
  if (found.length === 0) {
    throw new DomainError("unavailable", "AddressNotResolved: the URL's host does not resolve");
  }
  return found.map((a) => a.address);
}

function isOwnListener(
  address: string,
  port: number,
  listeners: readonly { address: string; port: number }[],
): boolean {
  const target = canonicalAddress(address);
  for (const listener of listeners) {
    if (listener.port !== port) continue;
    if (classifyAddress(listener.address) === "unspecified") {
      if (isLocalAddress(target)) return true;
    } else if (canonicalAddress(listener.address) === target) {
      return true;
    }
  }
  return false;
}

/** Every address a socket bound to 0.0.0.0 or :: answers on: loopback, unspecified, and the interfaces'. */
function isLocalAddress(canonical: string): boolean {
  const cls = classifyAddress(canonical);
  if (cls === "loopback" || cls === "unspecified") return true;
  for (const list of Object.values(networkInterfaces())) {
    for (const iface of list ?? []) if (canonicalAddress(iface.address) === canonical) return true;
  }
  return false;
}
