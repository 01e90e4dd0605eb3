import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import {
  type GetServerStatusResponse,
  GetServerStatusResponseSchema,
  ServingState,
} from "../../../gen/credbroker/v1/server_service_pb.js";
import { type ClientCommand, ExitWith, runClientCommand } from "../client-command.js";
import { EXIT } from "../exit-codes.js";
import type { Io } from "../io.js";
import { table } from "../render.js";

export const STATUS: ClientCommand = {
  command: "credbroker status",
  args: "",
  about: `Shows the daemon: its address, version, uptime, health, store (backend, where,
credential and caller counts) and listeners (API, IMDS, container). Admins only.
Exit 0 when it serves and its store answers, 6 when it is shutting down, its
store does not answer, or it cannot be reached.`,
  flags: [],
  async run(ctx) {
    const client = ctx.client();
    const res = await client.server.getServerStatus({});
    ctx.print(GetServerStatusResponseSchema, res, () => statusTable(client.baseUrl, res));
    if (!healthy(res)) throw new ExitWith(EXIT.unavailable);
  },
};

/** `credbroker status`: returns the exit code. */
export function statusCommand(argv: readonly string[], io: Io): Promise<number> {
  return runClientCommand(STATUS, argv, io);
}

function healthy(s: GetServerStatusResponse): boolean {
  return s.health === ServingState.SERVING && s.store?.reachable === true;
}

/** One screen: FIELD / VALUE rows. */
function statusTable(address: string, s: GetServerStatusResponse): string {
  const store = s.store;
  const listener = (kind: string) => {
    const l = s.listeners.find((x) => x.kind === kind);
    if (l === undefined) return "not listening";
    return l.credential ? `${l.url} (serves ${l.credential})` : l.url;
  };
  const count = (n: bigint | undefined) => (n === undefined ? "-" : String(n));
  return table([
    ["address", address],
    ["version", s.version],
    ...(s.commit ? [["commit", s.commit]] : []),
    ["node", s.nodeVersion],
    ["health", s.health === ServingState.SERVING ? "serving" : "draining (shutting down)"],
    [
      "uptime",
      `${s.uptime ? humanDuration(durationMs(s.uptime)) : "-"}${s.startedAt ? ` (since ${timestampDate(s.startedAt).toISOString()})` : ""}`,
    ],
    [
      "store",
      `${store?.backend ?? "-"} ${store?.location ?? ""}${store?.reachable ? "" : ` (not answering: ${store?.problem || "unknown"})`}`.trim(),
    ],
    ["credentials", count(store?.credentialCount)],
    ["callers", count(store?.callerCount)],
    ["api", listener("api")],
    ["imds", listener("imds")],
    ["container", listener("container")],
  ]);
}

/** 93784000 ms → "1d 2h 3m 4s"; leading zero units are left out. */
export function humanDuration(ms: number): string {
  let rest = Math.floor(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3_600],
    ["m", 60],
  ] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 || parts.length > 0) parts.push(`${n}${unit}`);
  }
  parts.push(`${rest}s`);
  return parts.join(" ");
}
