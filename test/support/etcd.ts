/**
 * A real etcd for tests: Debian's etcd-server (/usr/bin/etcd, installed by
 * scripts/test-deps.sh), one member on 127.0.0.1, no systemd.
 *
 * - A fresh temp data dir (mkdtemp), two free loopback ports (client, peer).
 * - Flags: a single-member cluster (`--initial-cluster`, state `new`);
 *   `--max-txn-ops 10000` and `--max-request-bytes 16 MiB`, which a
 *   credbroker fleet needs too: a bulk import batch (1000 credentials) is one
 *   transaction of a few thousand operations (docs/ARCHITECTURE.md).
 * - The child gets no ETCD_* variables from the environment, so nothing from
 *   the host's etcd configuration leaks in.
 * - Ready when `GET /health` answers `"health":"true"`, bounded; a failure
 *   carries the tail of etcd's log (<tmp>/etcd.log).
 * - `pause()`/`resume()` freeze and thaw it by PID (SIGSTOP/SIGCONT).
 * - `kill()` stops the process by PID (SIGTERM, then SIGKILL after a grace
 *   period) and keeps the data dir; `start()` runs it again on the same ports
 *   and data; `stop()` kills it and removes the dir. A test run that exits
 *   without calling stop() kills it on the way out (process "exit").
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePorts } from "./swift.js";

export interface EtcdServer {
  /** http://127.0.0.1:PORT, the client URL. */
  readonly endpoint: string;
  /** Stops the process (SIGTERM, then SIGKILL); the data stays for start(). */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data; resolves when healthy. */
  start(): Promise<void>;
  /**
   * Freezes the process (SIGSTOP): its connections stay open but nothing is
   * answered, as in a silent network partition. `resume()` (SIGCONT) thaws it.
   */
  pause(): void;
  resume(): void;
  /** Kills it and removes the data dir. */
  stop(): Promise<void>;
}

const ETCD = "/usr/bin/etcd";
const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;

export async function startEtcd(): Promise<EtcdServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-etcd-"));
  const [clientPort, peerPort] = await freePorts(2);
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const logFile = path.join(dir, "etcd.log");
  const args = [
    "--name=test",
    `--data-dir=${path.join(dir, "data")}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=test=${peer}`,
    "--initial-cluster-state=new",
    "--max-txn-ops=10000",
    `--max-request-bytes=${16 * 1024 * 1024}`,
    "--logger=zap",
    "--log-outputs=stderr",
  ];
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("ETCD")),
  );

  let child: ChildProcess | undefined;
  const killOnExit = () => child?.kill("SIGKILL");
  process.on("exit", killOnExit);

  const kill = async () => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once("exit", () => resolve()));
    running.kill("SIGTERM");
    running.kill("SIGCONT"); // a paused etcd acts on the SIGTERM only once thawed
    const timer = setTimeout(() => running.kill("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };

  const start = async () => {
    const log = openSync(logFile, "a");
    try {
      child = spawn(ETCD, args, { env, stdio: ["ignore", log, log] });
    } finally {
      closeSync(log);
    }
    const started = child;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (started.exitCode !== null) break;
      try {
        const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) });
        if ((await res.text()).includes('"health":"true"')) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await kill();
    const tail = (await readFile(logFile, "utf8").catch(() => "")).slice(-3000);
    throw new Error(`etcd did not become healthy at ${client}; log tail:\n${tail}`);
  };

  try {
    await start();
  } catch (err) {
    process.off("exit", killOnExit);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    endpoint: client,
    kill,
    start,
    pause: () => child?.kill("SIGSTOP"),
    resume: () => child?.kill("SIGCONT"),
    async stop() {
      await kill();
      process.off("exit", killOnExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
