import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  type KeyService,
  type RotateMasterKeyResponse,
  RotateMasterKeyResponseSchema,
} from "../../gen/credbroker/v1/key_service_pb.js";
import { authorizeAdmin } from "../core/authz.js";
import type { KeyRotation } from "../store/key-rotation.js";
import { callerOf } from "./caller-context.js";
import { toConnectError } from "./error-mapping.js";

export interface KeyServiceDeps {
  rotation: KeyRotation;
  /** Told after the previous keys are retired: drop what was derived from records. */
  retired(): void;
  log: Logger;
}

const ROTATE = "/credbroker.v1.KeyService/RotateMasterKey";

/** KeyService: admins only (docs/ARCHITECTURE.md, "Master key rotation"). */
export function keyService(deps: KeyServiceDeps): ServiceImpl<typeof KeyService> {
  const rotation = deps.rotation;
  return {
    getKeyStatus(_req, ctx) {
      authorizeAdmin(callerOf(ctx));
      return rotation.status();
    },

    // Not a generator itself: the admin check fails at the call, inside the
    // interceptors (mapped, audited), not mid-stream.
    rotateMasterKey(req, ctx) {
      authorizeAdmin(callerOf(ctx));
      return progress(rotation, req.batchSize, ctx.signal, deps.log);
    },

    async retirePreviousKeys(_req, ctx) {
      authorizeAdmin(callerOf(ctx));
      const { retired, checked } = await rotation.retire();
      deps.retired();
      deps.log.info({ retired, checked }, "previous master keys retired; record caches dropped");
      return { retiredKeyIds: retired, checked: BigInt(checked) };
    },
  };
}

/** The rotation's progress as response messages, one per batch. */
async function* progress(
  keys: KeyRotation,
  batchSize: number,
  signal: AbortSignal,
  log: Logger,
): AsyncGenerator<RotateMasterKeyResponse> {
  log.info({ masterKeyId: keys.masterKeyId }, "master key rotation: re-sealing");
  try {
    for await (const p of keys.rotate(batchSize, signal)) {
      log.debug(p, "master key rotation: batch written");
      if (p.done) log.info(p, "master key rotation: every record is under the current key");
      yield create(RotateMasterKeyResponseSchema, {
        currentKeyId: p.currentKeyId,
        scanned: BigInt(p.scanned),
        resealed: BigInt(p.resealed),
        done: p.done,
      });
    }
  } catch (err) {
    // Errors while streaming pass the interceptors by: map them here, so
    // only a domain error's (secret-free) message reaches the caller.
    throw toConnectError(err, log, ROTATE);
  }
}
