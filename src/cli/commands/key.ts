import {
  GetKeyStatusResponseSchema,
  RetirePreviousKeysResponseSchema,
  type RotateMasterKeyResponse,
  RotateMasterKeyResponseSchema,
} from "../../../gen/credbroker/v1/key_service_pb.js";
import { type ClientCommand, subcommandGroup } from "../client-command.js";
import { UsageError } from "../flags.js";
import type { Io } from "../io.js";
import { Progress } from "../progress.js";
import { table } from "../render.js";

const list = (ids: readonly string[]) => (ids.length === 0 ? "-" : ids.join(", "));

export const SUBCOMMANDS: Record<string, Omit<ClientCommand, "command">> = {
  status: {
    args: "",
    about: "Shows the loaded master key ids and whether a rotation is in progress.",
    flags: [],
    async run(ctx) {
      const res = await ctx.client().keys.getKeyStatus({});
      ctx.print(GetKeyStatusResponseSchema, res, () =>
        table([
          ["current key", res.currentKeyId],
          // On etcd the fleet's key; this daemon's own is shown when it differs.
          ...(res.masterKeyId !== res.currentKeyId
            ? [["this daemon's master key", res.masterKeyId] as [string, string]]
            : []),
          ["previous keys", list(res.previousKeyIds)],
          ["rotation in progress", String(res.rotationInProgress)],
          ["records may be under", list(res.drainingKeyIds)],
        ]),
      );
    },
  },
  rotate: {
    args: "",
    about:
      "Re-seals every record under the current master key, while the daemon serves.\n" +
      "Start the daemon with the new key and the old one as a previous key first\n" +
      '(docs/CLI.md, "Master key rotation"). Safe to interrupt and run again.\n' +
      "With --store etcd it first moves the fleet to this daemon's master key, once\n" +
      "every running daemon of the fleet holds that key.",
    flags: [
      {
        name: "batch-size",
        kind: "string",
        value: "N",
        default: "500",
        help: "records per synced write batch (1-5000)",
      },
    ],
    async run(ctx) {
      const batchSize = Number(ctx.flags.string("batch-size") ?? "500");
      if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 5000) {
        throw new UsageError("--batch-size: 1 to 5000");
      }
      const meter = ctx.io.errIsTTY
        ? new Progress((t) => ctx.io.err(t), { unit: "records" })
        : undefined;
      let last: RotateMasterKeyResponse | undefined;
      for await (const p of ctx.client().keys.rotateMasterKey({ batchSize })) {
        last = p;
        meter?.update(Number(p.scanned));
      }
      meter?.clear();
      if (last === undefined || !last.done) throw new Error("the daemon ended the rotation early");
      const done = last;
      ctx.print(
        RotateMasterKeyResponseSchema,
        done,
        () =>
          `every record is sealed under key ${done.currentKeyId}: ${done.resealed} re-sealed of ${done.scanned}\n` +
          'the previous key can now be retired: "credbroker key retire"\n',
      );
    },
  },
  retire: {
    args: "",
    about:
      "Retires the previous master keys once no record needs them.\n" +
      "Checks every record, then has the daemon forget the previous keys and drop its\n" +
      "record caches. Then remove the old key from the daemon's configuration\n" +
      "(CREDBROKER_PREVIOUS_MASTER_KEYS or master.key.previous).",
    flags: [],
    async run(ctx) {
      const res = await ctx.client().keys.retirePreviousKeys({});
      ctx.print(
        RetirePreviousKeysResponseSchema,
        res,
        () =>
          `checked ${res.checked} records: all under the current key\n` +
          `retired key ids: ${list(res.retiredKeyIds)}\n` +
          "now remove the old key from CREDBROKER_PREVIOUS_MASTER_KEYS or master.key.previous\n",
      );
    },
  },
};

const KEY = subcommandGroup("key", "   (admins only)", SUBCOMMANDS);

export const KEY_USAGE = KEY.usage;

/** `credbroker key …`: returns the exit code. */
export function keyCommand(argv: readonly string[], io: Io): Promise<number> {
  return KEY.run(argv, io);
}
