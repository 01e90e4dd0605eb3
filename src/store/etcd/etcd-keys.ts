import type { IKeyValue } from "etcd3";
import { DomainError } from "../../core/errors.js";
import { type FleetKeys, fleetKeys } from "../rotation.js";
import type { Sealer } from "../sealing.js";

/** What FleetKey tells when the fleet's key moved under this daemon. */
export type KeyMoved = (change: { from: string; to: string; draining: string[] }) => void;

/**
 * The fleet's master key as this daemon knows it (docs/ARCHITECTURE.md,
 * "Master key rotation"): the key etcd's keycheck is sealed under (what
 * every daemon seals with), the keycheck's revision, and the keys a
 * rotation in progress still drains.
 *
 * This is the fence: every write compares the keycheck's revision
 * (etcd-store.ts), so once a rotation moved the fleet to a new key, a
 * daemon that has not seen it yet writes nothing. Its write conflicts,
 * `take` reads the new keycheck, and the daemon seals under the new key
 * from then on if it holds it, or fails failed_precondition saying which
 * key it lacks.
 */
export class FleetKey {
  private state: FleetKeys;
  private revision: string;

  constructor(
    private readonly sealer: Sealer,
    private readonly where: string,
    check: IKeyValue,
    marker: IKeyValue | undefined,
    private readonly moved: KeyMoved,
  ) {
    this.state = fleetKeys(sealer, check.value, marker?.value, where);
    this.revision = check.mod_revision;
    sealer.sealUnder(this.state.keyId);
  }

  get keyId(): string {
    return this.state.keyId;
  }

  /** The keycheck's mod_revision, which every write compares. */
  get checkRevision(): string {
    return this.revision;
  }

  /** Key ids records may still be sealed under (a rotation in progress). */
  get draining(): readonly string[] {
    return this.state.draining;
  }

  /**
   * Takes the keycheck and marker as etcd holds them now. A keycheck under
   * another key means a rotation moved the fleet: seal under that key from
   * now on (failed_precondition when it is not loaded, nothing changed).
   */
  take(check: IKeyValue | undefined, marker: IKeyValue | undefined): void {
    if (check === undefined) {
      throw new DomainError("data_loss", `${this.where} has lost its keycheck (meta/keycheck)`);
    }
    const next = fleetKeys(this.sealer, check.value, marker?.value, this.where);
    const from = this.state.keyId;
    this.state = next;
    this.revision = check.mod_revision;
    if (next.keyId !== from) {
      this.sealer.sealUnder(next.keyId);
      this.moved({ from, to: next.keyId, draining: next.draining });
    }
  }

  /** The fleet's key and what it drains. */
  get current(): FleetKeys {
    return this.state;
  }

  /** This daemon moved the fleet (planFleetMove's `next`); the keycheck was written at `revision`. */
  movedHere(next: FleetKeys, revision: string): void {
    this.state = next;
    this.revision = revision;
    this.sealer.sealUnder(next.keyId);
  }

  /** This daemon finished the rotation: the marker is gone. */
  finished(): void {
    this.state = { keyId: this.state.keyId, draining: [] };
  }
}
