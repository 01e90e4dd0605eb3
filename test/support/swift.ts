/**
 * A real, signature-verifying S3 endpoint for tests: OpenStack Swift 2.30
 * from Debian (package python3-swift, installed by scripts/test-deps.sh) with
 * its s3api and tempauth middlewares, all on 127.0.0.1, no systemd, no root.
 *
 * What `startSwift()` runs, and why:
 *
 * - Everything lives in a fresh temp dir (mkdtemp under os.tmpdir()):
 *   swift.conf (hash path prefix/suffix, one storage policy), the account,
 *   container, object and proxy server configs, the three one-replica rings
 *   and a devices dir (devices/d1, `mount_check = false`). Nothing is read
 *   from or written to /etc/swift, /var/cache/swift or /srv.
 * - Ports: five free loopback ports are found by binding 127.0.0.1:0 in Node
 *   (account, container, object, proxy, and one left unused for memcache).
 * - Rings: `swift-ring-builder <ring>.builder create 6 1 1`, `add
 *   r1z1-127.0.0.1:<port>/d1 100` and `rebalance`, for account, container and
 *   object. These are the `swift.cli.ringbuilder.main` entry point that
 *   /usr/bin/swift-ring-builder calls, run with the same argv in a single
 *   python process to save start-up time (exit status 2 = error fails).
 * - Servers: one python process per server, each doing what
 *   /usr/bin/swift-{account,container,object,proxy}-server does
 *   (`run_wsgi(conf, "<type>-server", verbose=True)`), with `workers = 0`, so
 *   each server is exactly one process, which stop() kills by PID (SIGTERM,
 *   then SIGKILL after a grace period). The small launcher
 *   (swift_launch.py, written to the temp dir) is needed because:
 *     * Swift reads swift.conf from the hard-coded /etc/swift before it looks
 *       at any config; the launcher calls `utils.set_swift_dir(<tmp>)` and
 *       reloads the storage policies first;
 *     * Swift always logs to syslog (/dev/log or UDP 514); the launcher swaps
 *       that handler for a null one, and `verbose=True` sends the log to
 *       stderr instead, which goes to <tmp>/<server>.log;
 *     * the servers call setsid(), so they would outlive a crashed test run;
 *       the launcher exits when fd 3 (a pipe whose other end this process
 *       holds) reaches EOF, i.e. when the Node process is gone without
 *       calling stop(), and then also removes the temp dir.
 *   The python is /usr/bin/python3 (Debian's, which has the swift modules), not
 *   whatever `python3` is first on PATH (e.g. a pyenv shim).
 * - Proxy pipeline, exactly: `catch_errors proxy-logging cache listing_formats
 *   s3api tempauth copy slo dlo proxy-logging proxy-server` (Swift itself
 *   inserts gatekeeper and versioned_writes at load time, as always);
 *   `account_autocreate = true` so the tempauth account exists on first use;
 *   tempauth `user_test_tester = testing .admin`; s3api `location =
 *   us-east-1` and no `storage_domain`, i.e. path-style requests only, SigV2
 *   and SigV4 signatures both checked (against the tempauth key).
 * - memcached is not run. The cache middleware points at a loopback port on
 *   which nothing listens: Swift logs "Error connecting to memcached" and goes
 *   on without a cache (every request then reads account/container info from
 *   the backends). Not 11211, so a memcached on the host is never shared.
 * - Ready when the account, container and object servers answer
 *   `GET /healthcheck` (their pipelines start with the healthcheck filter) and
 *   the proxy answers `GET /info` (its pipeline has no healthcheck filter),
 *   bounded to 30 s; on failure the error carries the tails of the logs.
 *
 * Start-up takes about 1.5-3 s. Needs a filesystem with user xattrs for the
 * temp dir (ext4, xfs, btrfs, tmpfs on Linux >= 6.6).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export interface SwiftServer {
  /** http://127.0.0.1:PORT of the proxy (the S3 endpoint, path-style). */
  readonly endpoint: string;
  readonly accessKeyId: "test:tester";
  readonly secretAccessKey: "testing";
  readonly region: "us-east-1";
  /** Kills the servers by PID (SIGTERM, then SIGKILL), waits, removes the temp dir. */
  stop(): Promise<void>;
}

/** The one key pair the servers know (tempauth's user test:tester); `npm run dev:s3` prints it. */
export const DEV_S3_KEY = { accessKeyId: "test:tester", secretAccessKey: "testing" } as const;

/** Debian's python, which has the swift modules (python3-swift). */
const PYTHON = "/usr/bin/python3";
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

const SERVERS = ["account", "container", "object", "proxy"] as const;
type ServerType = (typeof SERVERS)[number];
const BACKENDS = ["account", "container", "object"] as const;

const LAUNCHER = `\
"""Runs a Swift server or swift-ring-builder with swift.conf from a temp dir.

swift_launch.py serve SWIFT_DIR CONF SECTION   (as /usr/bin/swift-*-server -v)
swift_launch.py rings SWIFT_DIR JSON           (swift-ring-builder, per argv)
"""
import json
import logging
import os
import shutil
import sys
import threading

from swift.common import utils


class NoSyslog(logging.NullHandler):
    """Stands in for the syslog handler Swift always adds."""

    def __init__(self, *args, **kwargs):
        logging.NullHandler.__init__(self)


def exit_with_parent(swift_dir):
    """Exits when fd 3 (a pipe from the test process) reaches EOF: the test
    process died without stop(), so clean up its temp dir too."""
    def watch():
        try:
            while os.read(3, 64):
                pass
        except OSError:
            pass
        shutil.rmtree(swift_dir, ignore_errors=True)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main():
    mode, swift_dir = sys.argv[1], sys.argv[2]
    utils.ThreadSafeSysLogHandler = NoSyslog
    utils.set_swift_dir(swift_dir)
    from swift.common.storage_policy import reload_storage_policies
    reload_storage_policies()
    if mode == "rings":
        from swift.cli.ringbuilder import main as ring_builder
        for argv in json.loads(sys.argv[3]):
            print("swift-ring-builder " + " ".join(argv), flush=True)
            try:
                status = ring_builder(["swift-ring-builder"] + argv)
            except SystemExit as e:
                status = e.code
            if status not in (None, 0, 1):
                sys.exit("swift-ring-builder failed with status %r" % status)
        return 0
    conf, section = sys.argv[3], sys.argv[4]
    exit_with_parent(swift_dir)
    from swift.common.wsgi import run_wsgi
    kwargs = {"verbose": True}
    if section == "object-server":
        from swift.obj import server
        kwargs["global_conf_callback"] = server.global_conf_callback
    return run_wsgi(conf, section, **kwargs)


sys.exit(main())
`;

/** Finds `count` distinct free ports on 127.0.0.1 (all held until all are found). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host: "127.0.0.1", port: 0, exclusive: true }, resolve);
      });
      const address = server.address();
      if (address === null || typeof address === "string") throw new Error("no port");
      ports.push(address.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

function runPython(args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      PYTHON,
      args,
      { cwd, encoding: "utf8", timeout: 30_000, env: pythonEnv() },
      (err, stdout, stderr) => {
        if (err === null) resolve(stdout);
        else reject(new Error(`${PYTHON} ${args.join(" ")}: ${err.message}\n${stdout}${stderr}`));
      },
    );
  });
}

function pythonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: "1", PYTHONNOUSERSITE: "1" };
  delete env.PYTHONPATH;
  delete env.PYTHONHOME;
  return env;
}

async function tail(file: string, lines = 40): Promise<string> {
  try {
    const text = await readFile(file, "utf8");
    return text.split("\n").slice(-lines).join("\n");
  } catch (err) {
    return `(cannot read ${file}: ${String(err)})`;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves true when GET url answers 200 within the per-try timeout. */
async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

interface Child {
  readonly type: ServerType;
  readonly process: ChildProcess;
  readonly log: string;
  readonly exited: Promise<void>;
  /** Set when the process could not be started at all. */
  spawnError?: Error;
}

function ini(sections: Record<string, Record<string, string | number>>): string {
  return Object.entries(sections)
    .map(
      ([name, values]) =>
        `[${name}]\n${Object.entries(values)
          .map(([k, v]) => `${k} = ${v}\n`)
          .join("")}`,
    )
    .join("\n");
}

export interface SwiftOptions {
  /** The S3 endpoint's (the proxy's) port on 127.0.0.1; default: a free one. */
  proxyPort?: number;
}

export async function startSwift(opts: SwiftOptions = {}): Promise<SwiftServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "credbroker-swift-"));
  const children: Child[] = [];
  let stopped: Promise<void> | undefined;

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await Promise.all(children.map(killChild));
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    const [accountPort, containerPort, objectPort, memcachePort, freeProxyPort] = await freePorts(
      opts.proxyPort === undefined ? 5 : 4,
    );
    const ports: Record<ServerType, number> = {
      account: accountPort,
      container: containerPort,
      object: objectPort,
      proxy: opts.proxyPort ?? freeProxyPort,
    };
    const devices = path.join(dir, "devices");
    await mkdir(path.join(devices, "d1"), { recursive: true });
    await writeFile(path.join(dir, "swift_launch.py"), LAUNCHER);
    await writeFile(
      path.join(dir, "swift.conf"),
      ini({
        "swift-hash": {
          swift_hash_path_prefix: randomBytes(8).toString("hex"),
          swift_hash_path_suffix: randomBytes(8).toString("hex"),
        },
        "storage-policy:0": { name: "Policy-0", default: "yes" },
      }),
    );

    const common = {
      bind_ip: "127.0.0.1",
      workers: 0,
      user: os.userInfo().username,
      swift_dir: dir,
      devices,
      mount_check: "false",
      disable_fallocate: "true",
      fallocate_reserve: 0,
      log_level: "INFO",
    };
    for (const type of BACKENDS) {
      await writeFile(
        path.join(dir, `${type}-server.conf`),
        ini({
          DEFAULT: { ...common, bind_port: ports[type], log_name: `${type}-server` },
          "pipeline:main": { pipeline: `healthcheck ${type}-server` },
          [`app:${type}-server`]: { use: `egg:swift#${type}` },
          "filter:healthcheck": { use: "egg:swift#healthcheck" },
        }),
      );
    }
    await writeFile(
      path.join(dir, "proxy-server.conf"),
      ini({
        DEFAULT: { ...common, bind_port: ports.proxy, log_name: "proxy-server" },
        "pipeline:main": {
          pipeline:
            "catch_errors proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server",
        },
        "app:proxy-server": { use: "egg:swift#proxy", account_autocreate: "true" },
        "filter:catch_errors": { use: "egg:swift#catch_errors" },
        "filter:proxy-logging": { use: "egg:swift#proxy_logging" },
        "filter:cache": {
          use: "egg:swift#memcache",
          // Nothing listens here: the middleware logs the errors and goes on.
          memcache_servers: `127.0.0.1:${memcachePort}`,
        },
        "filter:listing_formats": { use: "egg:swift#listing_formats" },
        "filter:s3api": { use: "egg:swift#s3api", location: "us-east-1" },
        "filter:tempauth": { use: "egg:swift#tempauth", user_test_tester: "testing .admin" },
        "filter:copy": { use: "egg:swift#copy" },
        "filter:slo": { use: "egg:swift#slo" },
        "filter:dlo": { use: "egg:swift#dlo" },
      }),
    );

    const ringCommands = BACKENDS.flatMap((type) => {
      const builder = path.join(dir, `${type}.builder`);
      return [
        [builder, "create", "6", "1", "1"],
        [builder, "add", `r1z1-127.0.0.1:${ports[type]}/d1`, "100"],
        [builder, "rebalance"],
      ];
    });
    await writeFile(
      path.join(dir, "rings.log"),
      await runPython(
        [path.join(dir, "swift_launch.py"), "rings", dir, JSON.stringify(ringCommands)],
        dir,
      ),
    );

    for (const type of SERVERS) children.push(spawnServer(dir, type));

    const deadline = Date.now() + READY_TIMEOUT_MS;
    const pending = new Set<ServerType>(SERVERS);
    while (pending.size > 0) {
      for (const child of children) {
        if (child.spawnError !== undefined) throw child.spawnError;
        if (child.process.exitCode !== null || child.process.signalCode !== null) {
          throw new Error(
            `swift ${child.type}-server exited (${child.process.exitCode ?? child.process.signalCode}) during start-up`,
          );
        }
      }
      const checks = [...pending].map(async (type) => {
        const probe = type === "proxy" ? "/info" : "/healthcheck";
        if (await answers(`http://127.0.0.1:${ports[type]}${probe}`)) pending.delete(type);
      });
      await Promise.all(checks);
      if (pending.size === 0) break;
      if (Date.now() > deadline) {
        throw new Error(
          `swift servers not ready after ${READY_TIMEOUT_MS / 1000} s: ${[...pending].join(", ")}`,
        );
      }
      await sleep(100);
    }

    return {
      endpoint: `http://127.0.0.1:${ports.proxy}`,
      ...DEV_S3_KEY,
      region: "us-east-1",
      stop,
    };
  } catch (err) {
    const logs = await Promise.all(
      [...children.map((c) => c.log), path.join(dir, "rings.log")].map(
        async (log) => `--- ${path.basename(log)}\n${await tail(log)}`,
      ),
    );
    await stop();
    const message = err instanceof Error ? err.message : String(err);
    const hint = /ENOENT|No module named/.test(message)
      ? " (is python3-swift installed? run `bash scripts/test-deps.sh`)"
      : "";
    throw new Error(`startSwift: ${message}${hint}\n${logs.join("\n")}`, { cause: err });
  }
}

function spawnServer(dir: string, type: ServerType): Child {
  const log = path.join(dir, `${type}-server.log`);
  const fd = openSync(log, "a");
  try {
    const child = spawn(
      PYTHON,
      [
        path.join(dir, "swift_launch.py"),
        "serve",
        dir,
        path.join(dir, `${type}-server.conf`),
        `${type}-server`,
      ],
      // fd 3: a pipe the server watches; it exits on EOF, i.e. when we are gone.
      { cwd: dir, env: pythonEnv(), stdio: ["ignore", fd, fd, "pipe"] },
    );
    const result: Child = {
      type,
      process: child,
      log,
      exited: new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.once("error", (err) => {
          result.spawnError = err;
          resolve();
        });
      }),
    };
    // Neither the server nor its lifeline keep the test process alive.
    child.unref();
    const lifeline = child.stdio[3];
    if (lifeline instanceof net.Socket) lifeline.unref();
    return result;
  } finally {
    closeSync(fd);
  }
}

async function killChild(child: Child): Promise<void> {
  const p = child.process;
  const running = () => p.exitCode === null && p.signalCode === null && p.pid !== undefined;
  if (running()) {
    p.kill("SIGTERM");
    const timer = setTimeout(() => {
      if (running()) p.kill("SIGKILL");
    }, STOP_GRACE_MS);
    await child.exited;
    clearTimeout(timer);
  }
  await child.exited;
  const lifeline = p.stdio[3];
  if (lifeline instanceof net.Socket) lifeline.destroy();
}
