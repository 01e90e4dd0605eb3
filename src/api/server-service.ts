import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type ServerService,
  ServingState,
  type StoreStatusSchema,
} from "../../gen/credbroker/v1/server_service_pb.js";
import { HealthCheckResponse_ServingStatus as Health } from "../../gen/grpc/health/v1/health_pb.js";
import { authorizeAdmin } from "../core/authz.js";
import { isDomainError } from "../core/errors.js";
import { callerOf } from "./caller-context.js";
import type { HealthState } from "./health-service.js";

/** The version, commit (undefined outside a clone) and Node of the running daemon. */
export interface BuildInfo {
  version: string;
  commit: string | undefined;
  node: string;
}

/** One listener as GetServerStatus reports it. */
export interface ListenerInfo {
  kind: "api" | "imds" | "container" | "gce-metadata" | "azure-identity";
  url: string;
  /** IMDS: the credential it serves. */
  credential?: string;
}

export interface ServerServiceDeps {
  /** Asked on the first call, then kept (it may run git). */
  build(): Promise<BuildInfo>;
  startedAt: Date;
  now(): Date;
  health: HealthState;
  store: {
    backend: string;
    location: string;
    counts(): Promise<{ credentials: number; callers: number }>;
  };
  /** The API listener first (known once it listens), then the metadata listeners. */
  listeners(): readonly ListenerInfo[];
}

/** ServerService: admins only (docs/API.md, "ServerService"). */
export function serverService(deps: ServerServiceDeps): ServiceImpl<typeof ServerService> {
  let build: Promise<BuildInfo> | undefined;
  return {
    async getServerStatus(_req, ctx) {
      authorizeAdmin(callerOf(ctx));
      build ??= deps.build();
      const [{ version, commit, node }, store] = await Promise.all([build, storeStatus(deps)]);
      const now = deps.now();
      return {
        version,
        commit: commit ?? "",
        nodeVersion: node,
        startedAt: timestampFromDate(deps.startedAt),
        uptime: durationFromMs(Math.max(0, now.getTime() - deps.startedAt.getTime())),
        health:
          deps.health.status("") === Health.SERVING ? ServingState.SERVING : ServingState.DRAINING,
        store,
        listeners: deps.listeners().map((l) => ({ ...l, credential: l.credential ?? "" })),
      };
    },
  };
}

/** The store's backend and counts; a store that does not answer is reported, not thrown. */
async function storeStatus(
  deps: ServerServiceDeps,
): Promise<MessageInitShape<typeof StoreStatusSchema>> {
  const { backend, location } = deps.store;
  try {
    const counts = await deps.store.counts();
    return {
      backend,
      location,
      reachable: true,
      credentialCount: BigInt(counts.credentials),
      callerCount: BigInt(counts.callers),
    };
  } catch (err) {
    // A domain error's message names no secret; anything else is said by its code only.
    const problem = isDomainError(err)
      ? `${err.code}: ${err.message}`
      : `internal: the store did not answer (${(err as NodeJS.ErrnoException).code ?? "error"})`;
    return { backend, location, reachable: false, problem };
  }
}
