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
 * - `startEtcd({ tls })`: the client URL is https:// with the given server
 *   certificate (the peer URL stays http:// on loopback); with
 *   `tls.clientCertAuth` etcd also demands a client certificate signed by
 *   `tls.ca` (`--client-cert-auth`), and the health check presents that one.
 * - `pause()`/`resume()` freeze and thaw it by PID (SIGSTOP/SIGCONT).
 * - `kill()` stops the process by PID (SIGTERM, then SIGKILL after a grace
 *   period) and keeps the data dir; `start()` runs it again on the same ports
 *   and data; `stop()` kills it and removes the dir. A test run that exits
 *   without calling stop() kills it on the way out (process "exit").
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { freePorts } from "./swift.js";

/** PEM files for etcd's client listener. */
export interface EtcdTls {
  /** The server certificate (a SAN for IP 127.0.0.1) and its key. */
  cert: string;
  key: string;
  /** The CA the server certificate chains to; with clientCertAuth, the trusted client CA. */
  ca: string;
  /**
   * Mutual TLS (`--client-cert-auth --trusted-ca-file ca`): every client
   * must present a certificate signed by `ca`; this one (and its key) is
   * what the health check presents.
   */
  clientCertAuth?: { cert: string; key: string };
}

export interface EtcdOptions {
  /** Serve clients over TLS (https://) instead of cleartext. */
  tls?: EtcdTls;
}

export interface EtcdServer {
  /** http://127.0.0.1:PORT (https:// with `tls`), the client URL. */
  readonly endpoint: string;
  /**
   * Stops the process (SIGTERM, then SIGKILL after a grace period; or
   * `"SIGKILL"` at once, a crash); the data stays for start().
   */
  kill(signal?: "SIGTERM" | "SIGKILL"): Promise<void>;
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

export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-etcd-"));
  const [clientPort, peerPort] = await freePorts(2);
  const tls = opts.tls;
  const client = `${tls === undefined ? "http" : "https"}://127.0.0.1:${clientPort}`;
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
    ...(tls === undefined ? [] : [`--cert-file=${tls.cert}`, `--key-file=${tls.key}`]),
    ...(tls?.clientCertAuth === undefined
      ? []
      : ["--client-cert-auth", `--trusted-ca-file=${tls.ca}`]),
  ];
  const health = healthCheck(client, tls);
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("ETCD")),
  );

  let child: ChildProcess | undefined;
  const killOnExit = () => child?.kill("SIGKILL");
  process.on("exit", killOnExit);

  const kill = async (signal: "SIGTERM" | "SIGKILL" = "SIGTERM") => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once("exit", () => resolve()));
    running.kill(signal);
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
        if ((await health()).includes('"health":"true"')) return;
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

/**
 * `GET /health`'s body, within a second; over TLS trusting `tls.ca`, and
 * presenting the client certificate when etcd demands one.
 */
function healthCheck(client: string, tls: EtcdTls | undefined): () => Promise<string> {
  if (tls === undefined) {
    return async () => {
      const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) });
      return res.text();
    };
  }
  const agent = new https.Agent({
    ca: readFileSync(tls.ca),
    ...(tls.clientCertAuth === undefined
      ? {}
      : { cert: readFileSync(tls.clientCertAuth.cert), key: readFileSync(tls.clientCertAuth.key) }),
    keepAlive: false,
  });
  return () =>
    new Promise((resolve, reject) => {
      const req = https.get(`${client}/health`, { agent, timeout: 1000 }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve(body));
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
    });
}
