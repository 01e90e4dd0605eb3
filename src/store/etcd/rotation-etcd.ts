import { DomainError } from "../../core/errors.js";
import type { ResealableStore } from "../key-rotation.js";
import { prefixEnd } from "../keys.js";
import {
  collectSealed,
  planFleetMove,
  planReseal,
  ROTATION_KEY,
  type SealedEntry,
} from "../rotation.js";
import type { Sealer } from "../sealing.js";
import type { WriteOp } from "../store-rules.js";
import type { FleetKey } from "./etcd-keys.js";
import { MEMBER_PREFIX, MEMBER_TTL_SECONDS, parseMember } from "./etcd-members.js";
import type { EtcdSnapshot } from "./etcd-snapshot.js";

/**
 * Re-sealed records per transaction: each is a put and a comparison of its
 * revision, plus the keycheck's, within etcd's default --max-txn-ops (128).
 */
const RESEAL_PER_TXN = 60;

type Decide<T> = (
  snapshot: EtcdSnapshot,
) => Promise<{ ops: readonly WriteOp[]; done(revision: string): T }>;

/** What the etcd store lends its rotation (etcd-store.ts). */
export interface EtcdRotationDeps {
  sealer: Sealer;
  fleet: FleetKey;
  /** This daemon's master key: where `key rotate` moves the fleet. */
  masterKeyId: string;
  /** Reads on one snapshot. */
  read<T>(body: (snapshot: EtcdSnapshot) => Promise<T>): Promise<T>;
  /** A write decided on a snapshot, committed only if nothing it read (nor the keycheck) changed. */
  write<T>(decide: Decide<T>): Promise<T>;
  /** Reads the keycheck and marker again (FleetKey.take). */
  refresh(): Promise<void>;
  /** Rewrites this daemon's member record (its keys changed). */
  retired(): Promise<void>;
}

/**
 * Master key rotation on etcd (docs/ARCHITECTURE.md, "Master key rotation"):
 * `begin` moves the fleet to this daemon's master key, once every running
 * daemon holds it; batches re-seal what is left, each record's write
 * comparing the revision it was read at, so a client's write in between is
 * never overwritten. Every write of every daemon compares the keycheck's
 * revision, so after `begin` nothing is sealed under an old key anywhere:
 * one pass suffices, as on LevelDB.
 */
export function etcdResealable(deps: EtcdRotationDeps): ResealableStore {
  const { sealer, fleet, masterKeyId, read, write } = deps;
  /** Another daemon moved the fleet elsewhere mid-rotation: this one stops. */
  const assertStillOurs = () => {
    if (fleet.keyId !== masterKeyId) {
      throw new DomainError(
        "aborted",
        `the fleet moved to key id ${fleet.keyId} during this rotation (a rotation started on another daemon); this one stops`,
      );
    }
  };
  const sealedBatch = (after: string, limit: number) => read((s) => sealedEntries(s, after, limit));

  return {
    async draining() {
      await deps.refresh();
      return fleet.draining;
    },

    async begin() {
      await deps.refresh();
      if (!sealer.has(masterKeyId)) {
        throw new DomainError(
          "failed_precondition",
          `this daemon's master key (id ${masterKeyId}) was retired; restart it with the key the fleet seals under (id ${fleet.keyId})`,
        );
      }
      await write(async (s) => {
        if (fleet.keyId === masterKeyId) return { ops: [], done: () => undefined };
        const members = (await s.scanHeld(MEMBER_PREFIX, prefixEnd(MEMBER_PREFIX))).map((e) =>
          parseMember(e.kv.value),
        );
        const lacking = members.filter((m) => !m.keyIds.includes(masterKeyId));
        if (lacking.length > 0) {
          throw new DomainError(
            "failed_precondition",
            `${lacking.length} running daemon(s) of the fleet do not hold key id ${masterKeyId} (${lacking.map((m) => m.name).join("; ")}): restart each with it as a previous key (CREDBROKER_PREVIOUS_MASTER_KEYS or master.key.previous) before moving the fleet to it; a stopped daemon drops out within ${MEMBER_TTL_SECONDS} s`,
          );
        }
        const { ops, next } = planFleetMove(sealer, fleet.current, masterKeyId);
        return { ops, done: (revision) => fleet.movedHere(next, revision) };
      });
    },

    sealedBatch,

    async resealBatch(after, limit) {
      assertStillOurs();
      const entries = await sealedBatch(after, limit);
      const stale = entries.filter((e) => !sealer.isCurrent(e.value)).map((e) => e.key);
      let resealed = 0;
      for (let i = 0; i < stale.length; i += RESEAL_PER_TXN) {
        const keys = stale.slice(i, i + RESEAL_PER_TXN);
        resealed += await write(async (s) => {
          assertStillOurs();
          // Read again at this snapshot: what a client wrote since is current already.
          const kvs = await s.getKvs(keys);
          const present: SealedEntry[] = [];
          keys.forEach((key, j) => {
            const kv = kvs[j];
            if (kv !== undefined) present.push({ key, value: kv.value });
          });
          const plan = planReseal(sealer, present);
          return { ops: plan.ops, done: () => plan.resealed.length };
        });
      }
      return { scanned: entries.length, resealed, last: entries.at(-1)?.key };
    },

    retired: deps.retired,

    async endRotation() {
      await write(async (s) => {
        assertStillOurs();
        if ((await s.get(ROTATION_KEY)) === undefined) return { ops: [], done: () => undefined };
        return { ops: [{ type: "del", key: ROTATION_KEY }], done: () => fleet.finished() };
      });
    },
  };
}

/** Up to `limit` sealed entries after `after`, in key order, at the snapshot's revision. */
function sealedEntries(s: EtcdSnapshot, after: string, limit: number): Promise<SealedEntry[]> {
  return collectSealed(after, limit, async (range, max) =>
    // The smallest key after `gt` is `gt + "\0"`.
    (await s.scan(range.gte ?? `${range.gt}\0`, range.lt, max)).map(({ key, kv }) => ({
      key,
      value: kv.value,
    })),
  );
}
