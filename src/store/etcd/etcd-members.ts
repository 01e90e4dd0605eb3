import { randomUUID } from "node:crypto";
import type { Etcd3, Lease } from "etcd3";

/** member/<random id> → JSON {name, keyIds}: one per running daemon of a fleet (keys.ts). */
export const MEMBER_PREFIX = "member/";
/**
 * How long etcd keeps a member record after its daemon stops renewing it
 * (killed, or cut off from etcd): until then a rotation still counts it.
 */
export const MEMBER_TTL_SECONDS = 10;
/** The wait before granting a lost lease again. */
const RETRY_MS = 1000;

/** A daemon of a fleet as its member record says: who, and which master key ids it holds. */
export interface Member {
  name: string;
  keyIds: string[];
}

/**
 * This daemon's member record in etcd: its name (host, pid, listen address
 * once known) and the master key ids it holds, under a lease the etcd3
 * client keeps alive, so the record goes away about MEMBER_TTL_SECONDS after
 * the daemon stops. A rotation reads every record before it moves the fleet
 * to a new key and commits only if none was written since (etcd-keys.ts):
 * no running daemon is left unable to open what the fleet seals.
 * A lost lease (etcd unreachable for longer than the TTL) is granted again
 * and the record written again; `failed` hears of the loss.
 */
export class FleetMember {
  private lease: Lease | undefined;
  private closed = false;
  private readonly key: Buffer;

  private constructor(
    private readonly client: Etcd3,
    prefix: string,
    private readonly record: () => Member,
    private readonly failed: (err: unknown) => void,
  ) {
    this.key = Buffer.from(`${prefix}${MEMBER_PREFIX}${randomUUID()}`);
  }

  /** Writes the record; rejects when etcd does not take it. */
  static async join(
    client: Etcd3,
    prefix: string,
    record: () => Member,
    failed: (err: unknown) => void,
  ): Promise<FleetMember> {
    const member = new FleetMember(client, prefix, record, failed);
    await member.register();
    return member;
  }

  /** Writes the record again: what it says changed (previous keys retired). */
  async refresh(): Promise<void> {
    await this.lease?.put(this.key).value(JSON.stringify(this.record()));
  }

  /**
   * Deletes the record (its lease revoked), waiting at most a second: with
   * etcd unreachable the record expires by itself, and shutdown goes on.
   */
  async leave(): Promise<void> {
    this.closed = true;
    await this.lease?.revoke({ deadline: Date.now() + 1000 }).catch(() => undefined);
  }

  private async register(): Promise<void> {
    const lease = this.client.lease(MEMBER_TTL_SECONDS);
    lease.on("lost", (err) => {
      if (this.closed || lease !== this.lease) return;
      this.lease = undefined;
      this.failed(err);
      this.again();
    });
    try {
      await lease.put(this.key).value(JSON.stringify(this.record()));
    } catch (err) {
      lease.release();
      throw err;
    }
    this.lease = lease;
    // Left while this was being written: take the record back out.
    if (this.closed) await this.leave();
  }

  /** Registers again every RETRY_MS until it works (told once, on the loss, not per try). */
  private again(): void {
    setTimeout(() => {
      if (this.closed) return;
      this.register().catch(() => this.again());
    }, RETRY_MS).unref();
  }
}

/** A member record's value; one that does not parse holds no key (and so blocks a rotation). */
export function parseMember(value: Buffer): Member {
  try {
    const m = JSON.parse(value.toString("utf8")) as { name?: unknown; keyIds?: unknown };
    return {
      name: typeof m.name === "string" ? m.name : "an unnamed daemon",
      keyIds: Array.isArray(m.keyIds) ? m.keyIds.filter((k) => typeof k === "string") : [],
    };
  } catch {
    return { name: "a daemon with an unreadable member record", keyIds: [] };
  }
}
