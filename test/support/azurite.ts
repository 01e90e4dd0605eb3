/**
 * A real, signature-verifying Azure Blob endpoint for tests: Azurite (npm
 * devDependency `azurite`), started as `node .../azurite/dist/src/blob/main.js`
 * so this process owns its one PID, on 127.0.0.1 and a free port, with
 * `--inMemoryPersistence` (nothing on disk) and `--disableTelemetry` (without
 * it Azurite phones home and lingers after SIGTERM). Each start has its own
 * random account (AZURITE_ACCOUNTS=name:base64key). It verifies Shared Key and
 * SAS signatures, SAS permissions, protocol and expiry. stop() kills it by PID
 * (SIGTERM, then SIGKILL after a grace period).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";

export interface AzuriteServer {
  /** The account name (3-24 lower-case letters and digits). */
  readonly account: string;
  /** The base64 account key (64 bytes). */
  readonly accountKey: string;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /** http://127.0.0.1:PORT/ACCOUNT: the path-style Blob endpoint. */
  readonly endpoint: string;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function mainScript(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve("azurite/package.json");
  return path.join(path.dirname(pkg), "dist", "src", "blob", "main.js");
}

export async function startAzurite(): Promise<AzuriteServer> {
  const account = `cb${randomBytes(6).toString("hex")}`;
  const accountKey = randomBytes(64).toString("base64");
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      mainScript(),
      "--inMemoryPersistence",
      "--disableTelemetry",
      "--blobHost",
      "127.0.0.1",
      "--blobPort",
      String(port),
    ],
    {
      env: { PATH: process.env.PATH ?? "", AZURITE_ACCOUNTS: `${account}:${accountKey}` },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`azurite exited: ${output}`);
    try {
      // Any HTTP answer (an unauthenticated request is refused) means it listens.
      await fetch(`${origin}/${account}?comp=list`);
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`azurite not ready after ${READY_TIMEOUT_MS} ms: ${output}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    account,
    accountKey,
    origin,
    endpoint: `${origin}/${account}`,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
