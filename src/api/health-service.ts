import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/grpc/health/v1/health_pb.js";

/**
 * Serving state shared by the health service and the shutdown path: the
 * daemon reports SERVING until it begins to drain.
 */
export class HealthState {
  private serving = true;
  private readonly waiters = new Set<() => void>();

  constructor(readonly services: readonly string[]) {}

  status(service: string): Status | undefined {
    if (service !== "" && !this.services.includes(service)) return undefined;
    return this.serving ? Status.SERVING : Status.NOT_SERVING;
  }

  /** Marks every service NOT_SERVING and wakes every watcher. */
  drain(): void {
    this.serving = false;
    for (const wake of this.waiters) wake();
  }

  get draining(): boolean {
    return !this.serving;
  }

  /** Resolves on the next change or when `signal` aborts. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

/** grpc.health.v1.Health: Check, List and Watch. Needs no token. */
export function healthService(state: HealthState): ServiceImpl<typeof Health> {
  return {
    check(req) {
      const status = state.status(req.service);
      if (status === undefined) {
        throw new ConnectError("unknown service", Code.NotFound);
      }
      return { status };
    },
    list() {
      const statuses = Object.fromEntries(
        ["", ...state.services].map((s) => [s, { status: state.status(s) }]),
      );
      return { statuses };
    },
    async *watch(req, ctx) {
      for (;;) {
        yield { status: state.status(req.service) ?? Status.SERVICE_UNKNOWN };
        // A draining daemon ends the stream, so shutdown is not held up by watchers.
        if (state.draining || ctx.signal.aborted) return;
        await state.changed(ctx.signal);
      }
    },
  };
}
