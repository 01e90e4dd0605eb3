import type { Credential, Provider } from "../../gen/credbroker/v1/credential_pb.js";
import { referencedName } from "../core/references.js";

/**
 * The LevelDB key layout. Names and namespaces cannot contain '/', so every
 * key splits unambiguously and a prefix range lists exactly one namespace.
 *
 *   meta/keycheck                     sealed constant: proves the master key
 *   cred/<id>                         sealed Credential (protobuf), the record
 *   name/<ns>/<name>            → id  unique name index, listing order
 *   prov/<provider>/<ns>/<name> → id  provider-filtered listing
 *   default/<ns>/<provider>     → id  the provider default
 *   ref/<ns>/<source>/<referrer> → id a role's dependency on its source
 *   caller/<name>                     sealed Caller
 *   callertoken/<sha256 hex>   → name  finds a caller from a presented token
 *   callerhash/<name>          → hex   the caller's current token hash (for rotation)
 *   meta/rotation                     sealed: a master key rotation in progress (rotation.ts)
 *   member/<id>               → JSON  etcd only, under a lease: a running daemon's key ids (etcd-members.ts)
 */
export const KEYCHECK_KEY = "meta/keycheck";

export const recordKey = (id: string): string => `cred/${id}`;
export const nameKey = (ns: string, name: string): string => `name/${ns}/${name}`;
export const defaultKey = (ns: string, provider: Provider): string => `default/${ns}/${provider}`;

export function namePrefix(ns: string, provider: Provider): string {
  return provider === 0 ? `name/${ns}/` : `prov/${provider}/${ns}/`;
}

export function referrerPrefix(ns: string, source: string): string {
  return `ref/${ns}/${source}/`;
}

/** The exclusive upper bound of a prefix range ('/' + 1 = '0'). */
export function prefixEnd(prefix: string): string {
  return `${prefix.slice(0, -1)}${String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)}`;
}

/** Every index entry a credential owns (the record itself excluded). */
export function indexEntries(c: Credential): Map<string, string> {
  const entries = new Map<string, string>([
    [nameKey(c.namespace, c.name), c.id],
    [`prov/${c.provider}/${c.namespace}/${c.name}`, c.id],
  ]);
  if (c.providerDefault) entries.set(defaultKey(c.namespace, c.provider), c.id);
  const source = referencedName(c);
  if (source !== undefined) {
    entries.set(`${referrerPrefix(c.namespace, source)}${c.name}`, c.id);
  }
  return entries;
}

export const CALLER_PREFIX = "caller/";
export const callerKey = (name: string): string => `${CALLER_PREFIX}${name}`;
export const callerTokenKey = (hash: string): string => `callertoken/${hash}`;
export const callerHashKey = (name: string): string => `callerhash/${name}`;
