import { DomainError } from "../core/errors.js";
import { CALLER_PREFIX, KEYCHECK_KEY, prefixEnd, recordKey } from "./keys.js";
import { Sealer } from "./sealing.js";
import { assertKeyOpens, KEYCHECK_PLAINTEXT, type WriteOp } from "./store-rules.js";

/**
 * The pure rules of a master key rotation (docs/ARCHITECTURE.md, "Master key
 * rotation"): what a store does with its keys when it opens, which keys hold
 * sealed values, and how a batch of them is re-sealed. No I/O.
 *
 * `meta/rotation` (sealed, like the keycheck, under the current key) exists
 * while records may still be sealed under a previous key. It is written
 * together with the keycheck re-sealed under the new key, the moment a store
 * is first opened with a new current key, before anything is written under
 * that key; and deleted once a full re-seal pass has moved everything. So:
 * - only the old key: the keycheck (under the new key) does not open: refused;
 * - only the new key while the marker names the old one: refused;
 * - both: serves, whatever point a kill -9 interrupted the rotation at.
 */
export const ROTATION_KEY = "meta/rotation";

/** The key prefixes whose values are sealed (keys.ts); index entries are not. */
export const SEALED_PREFIXES: readonly string[] = [CALLER_PREFIX, recordKey("")].sort();

/** One stored value, by its logical key. */
export interface SealedEntry {
  key: string;
  value: Buffer;
}

/** A key range: from `gte` (or after `gt`) up to `lt`. */
export interface KeyRange {
  gte?: string;
  gt?: string;
  lt: string;
}

/** The ranges of sealed keys after `after` ("" = from the first), in key order. */
export function sealedRanges(after: string): KeyRange[] {
  const ranges: KeyRange[] = [];
  for (const prefix of SEALED_PREFIXES) {
    const lt = prefixEnd(prefix);
    if (after >= lt) continue;
    ranges.push(after >= prefix ? { gt: after, lt } : { gte: prefix, lt });
  }
  return ranges;
}

/**
 * Up to `limit` sealed entries after `after`, in key order (callers, then
 * records): `scan` reads one range, at most `max` entries of it, in order.
 */
export async function collectSealed(
  after: string,
  limit: number,
  scan: (range: KeyRange, max: number) => Promise<SealedEntry[]>,
): Promise<SealedEntry[]> {
  const out: SealedEntry[] = [];
  for (const range of sealedRanges(after)) {
    out.push(...(await scan(range, limit - out.length)));
    if (out.length >= limit) break;
  }
  return out;
}

/** What `meta/rotation` says: the key everything moves to, and the keys it moves from. */
export interface RotationMarker {
  to: string;
  from: string[];
}

/** The marker, sealed under the key it names as the one everything moves to. */
export function sealMarker(sealer: Sealer, marker: RotationMarker): Buffer {
  return sealer.seal(Buffer.from(JSON.stringify({ v: 1, ...marker })), ROTATION_KEY, marker.to);
}

export function openMarker(sealer: Sealer, sealed: Uint8Array): RotationMarker {
  const parsed: unknown = JSON.parse(sealer.open(sealed, ROTATION_KEY).toString("utf8"));
  const m = parsed as { to?: unknown; from?: unknown };
  if (
    typeof m.to !== "string" ||
    !Array.isArray(m.from) ||
    !m.from.every((id): id is string => typeof id === "string")
  ) {
    throw new DomainError("data_loss", `record ${ROTATION_KEY} is damaged: not a rotation marker`);
  }
  return { to: m.to, from: m.from };
}

/** The keys a store was opened with: writes to make first, and the keys a rotation drains. */
export interface OpenedKeys {
  ops: WriteOp[];
  /** Key ids records may still be sealed under; empty when no rotation is in progress. */
  draining: string[];
}

const PREVIOUS_KEY_PLACES = "CREDBROKER_PREVIOUS_MASTER_KEYS or master.key.previous";

/**
 * Decides how a store opens with `sealer`'s keys, given its keycheck and
 * rotation marker (undefined when absent). failed_precondition, naming key
 * ids (fingerprints) and never key material, when the loaded keys cannot
 * safely serve the store:
 * - the keycheck's key is not loaded;
 * - a rotation is in progress and a key it drains is not loaded.
 * When the keycheck is under a previous key, the current key is new: the
 * rotation starts (`ops`: the keycheck and the marker, under the new key).
 */
export function openKeys(
  sealer: Sealer,
  check: Buffer,
  marker: Buffer | undefined,
  where: string,
): OpenedKeys {
  const current = sealer.currentKeyId;
  const sealedWith = checkedKeyId(sealer, check, where);
  const drained = drainedBy(sealer, marker);
  if (sealedWith === current) {
    assertLoaded(sealer, drained, where);
    return { ops: [], draining: drained };
  }
  // A new current key: from now on it seals, so the keycheck moves to it
  // first, with the marker naming every key records may still be under.
  const from = [...new Set([...drained, sealedWith ?? ""])].filter(
    (id) => id !== "" && id !== current,
  );
  assertLoaded(sealer, from, where);
  return {
    ops: [
      { type: "put", key: KEYCHECK_KEY, value: sealer.seal(KEYCHECK_PLAINTEXT, KEYCHECK_KEY) },
      { type: "put", key: ROTATION_KEY, value: sealMarker(sealer, { to: current, from }) },
    ],
    draining: from,
  };
}

/**
 * The key id the keycheck is sealed under, once the keycheck opens;
 * failed_precondition when that key is not loaded or does not open it.
 */
function checkedKeyId(sealer: Sealer, check: Buffer, where: string): string | undefined {
  const sealedWith = Sealer.keyIdOf(check);
  if (sealedWith !== undefined && !sealer.has(sealedWith)) {
    throw new DomainError(
      "failed_precondition",
      `the master key (id ${sealer.currentKeyId}) does not open ${where}: it is sealed under key id ${sealedWith}, which is not loaded (${previousList(sealer)}): give that key as the master key or, to rotate away from it, as a previous key (${PREVIOUS_KEY_PLACES})`,
    );
  }
  assertKeyOpens(sealer, check, where);
  return sealedWith;
}

/** The key ids a rotation in progress drains (none without a marker). */
function drainedBy(sealer: Sealer, marker: Buffer | undefined): string[] {
  return marker === undefined ? [] : openMarker(sealer, marker).from;
}

/** The key a fleet seals under (its keycheck's), and the keys a rotation in progress drains. */
export interface FleetKeys {
  keyId: string;
  draining: string[];
}

/**
 * How a daemon of a fleet (etcd) takes the keys it was given: it seals
 * under the fleet's key, the one the keycheck is under, whatever its own
 * master key is; only `credbroker key rotate` moves a fleet to another key
 * (`planFleetMove`), never a daemon's start. failed_precondition, as
 * `openKeys`, when the fleet's key or a key a rotation drains is not loaded.
 */
export function fleetKeys(
  sealer: Sealer,
  check: Buffer,
  marker: Buffer | undefined,
  where: string,
): FleetKeys {
  const keyId = checkedKeyId(sealer, check, where) ?? sealer.currentKeyId;
  const draining = drainedBy(sealer, marker).filter((id) => id !== keyId);
  assertLoaded(sealer, draining, where, keyId);
  return { keyId, draining };
}

/**
 * The writes that move a fleet from `fleet` to the loaded key `to`: the
 * keycheck sealed under `to`, and the marker naming every key records may
 * still be under (the fleet's key and whatever it was still draining).
 * Every daemon compares the keycheck's revision in each write, so once
 * these are committed no daemon seals under another key (etcd-keys.ts).
 */
export function planFleetMove(
  sealer: Sealer,
  fleet: FleetKeys,
  to: string,
): { ops: WriteOp[]; next: FleetKeys } {
  const from = [...new Set([...fleet.draining, fleet.keyId])].filter((id) => id !== to);
  return {
    ops: [
      { type: "put", key: KEYCHECK_KEY, value: sealer.seal(KEYCHECK_PLAINTEXT, KEYCHECK_KEY, to) },
      { type: "put", key: ROTATION_KEY, value: sealMarker(sealer, { to, from }) },
    ],
    next: { keyId: to, draining: from },
  };
}

function assertLoaded(
  sealer: Sealer,
  draining: readonly string[],
  where: string,
  to = sealer.currentKeyId,
): void {
  const missing = draining.filter((id) => !sealer.has(id));
  if (missing.length === 0) return;
  throw new DomainError(
    "failed_precondition",
    `a master key rotation of ${where} to key id ${to} is not finished: records may still be sealed under key id ${missing.join(", ")}, which is not loaded: give it as a previous key (${PREVIOUS_KEY_PLACES}) and run "credbroker key rotate" to finish`,
  );
}

function previousList(sealer: Sealer): string {
  const ids = sealer.previousKeyIds;
  return ids.length === 0 ? "no previous key loaded" : `previous keys loaded: ${ids.join(", ")}`;
}

/** A planned re-seal batch: a put for every entry not under the current key. */
export interface ResealPlan {
  ops: WriteOp[];
  /** The keys of the entries still under a previous key. */
  resealed: string[];
}

/**
 * Re-seals every entry not under the current key: opened with the key that
 * sealed it, sealed under the current one with the same additional data (its
 * logical key). A damaged record, or one under a key not loaded, fails the
 * batch with data_loss naming it: nothing of the batch is written.
 */
export function planReseal(sealer: Sealer, entries: readonly SealedEntry[]): ResealPlan {
  const ops: WriteOp[] = [];
  const resealed: string[] = [];
  for (const { key, value } of entries) {
    if (sealer.isCurrent(value)) continue;
    ops.push({ type: "put", key, value: sealer.reseal(value, key) });
    resealed.push(key);
  }
  return { ops, resealed };
}

/** The keys of entries not sealed under the current key (for retirement's check). */
export function notUnderCurrent(sealer: Sealer, entries: readonly SealedEntry[]): string[] {
  return entries.filter((e) => !sealer.isCurrent(e.value)).map((e) => e.key);
}
