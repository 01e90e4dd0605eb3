import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Caller, CallerSchema } from "../../gen/credbroker/v1/caller_pb.js";
import { DomainError } from "../core/errors.js";
import { callerHashKey, callerKey, callerTokenKey } from "./keys.js";
import type { Sealer } from "./sealing.js";
import type { WriteOp } from "./store-rules.js";
import type { StoreReader } from "./write-plan.js";

/**
 * The caller half of a store, decided over a StoreReader like credential
 * writes (write-plan.ts): each function reads what it needs and returns the
 * one atomic write. Callers are sealed like credentials; the token index
 * holds only SHA-256 hashes.
 */

export function sealCaller(sealer: Sealer, c: Caller): WriteOp {
  const key = callerKey(c.name);
  return { type: "put", key, value: sealer.seal(toBinary(CallerSchema, c), key) };
}

export function openCaller(sealer: Sealer, name: string, value: Uint8Array): Caller {
  return fromBinary(CallerSchema, sealer.open(value, callerKey(name)));
}

/** not_found when absent. */
export async function readCaller(reader: StoreReader, sealer: Sealer, name: string) {
  const value = await reader.get(callerKey(name));
  if (value === undefined) throw new DomainError("not_found", `caller ${name} not found`);
  return openCaller(sealer, name, value);
}

export async function callerByTokenHash(
  reader: StoreReader,
  sealer: Sealer,
  tokenHash: string,
): Promise<Caller | undefined> {
  const name = await reader.get(callerTokenKey(tokenHash));
  if (name === undefined) return undefined;
  const value = await reader.get(callerKey(name.toString("utf8")));
  return value === undefined ? undefined : openCaller(sealer, name.toString("utf8"), value);
}

export async function planCreateCaller(
  reader: StoreReader,
  sealer: Sealer,
  caller: Caller,
  tokenHash: string,
): Promise<WriteOp[]> {
  if ((await reader.get(callerKey(caller.name))) !== undefined) {
    throw new DomainError("already_exists", `caller ${caller.name} already exists`);
  }
  return [
    sealCaller(sealer, caller),
    { type: "put", key: callerTokenKey(tokenHash), value: Buffer.from(caller.name) },
    { type: "put", key: callerHashKey(caller.name), value: Buffer.from(tokenHash) },
  ];
}

export async function planUpdateCaller(
  reader: StoreReader,
  sealer: Sealer,
  name: string,
  change: (current: Caller) => Caller,
): Promise<{ ops: WriteOp[]; next: Caller }> {
  const next = change(await readCaller(reader, sealer, name));
  if (next.name !== name)
    throw new DomainError("invalid_argument", "a caller's name cannot change");
  return { ops: [sealCaller(sealer, next)], next };
}

/** The old token's index entry goes in the same write that adds the new one. */
export async function planRotateCallerToken(
  reader: StoreReader,
  sealer: Sealer,
  name: string,
  tokenHash: string,
): Promise<WriteOp[]> {
  await readCaller(reader, sealer, name);
  const old = await reader.get(callerHashKey(name));
  return [
    ...(old === undefined
      ? []
      : [{ type: "del" as const, key: callerTokenKey(old.toString("utf8")) }]),
    { type: "put", key: callerTokenKey(tokenHash), value: Buffer.from(name) },
    { type: "put", key: callerHashKey(name), value: Buffer.from(tokenHash) },
  ];
}

export async function planDeleteCaller(
  reader: StoreReader,
  sealer: Sealer,
  name: string,
): Promise<WriteOp[]> {
  await readCaller(reader, sealer, name);
  const hash = await reader.get(callerHashKey(name));
  return [
    { type: "del", key: callerKey(name) },
    { type: "del", key: callerHashKey(name) },
    ...(hash === undefined
      ? []
      : [{ type: "del" as const, key: callerTokenKey(hash.toString("utf8")) }]),
  ];
}
