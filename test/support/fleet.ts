/**
 * A fleet for tests: N real daemons (`credbroker serve --store etcd`) on one
 * real etcd (support/etcd.ts), sharing one master key, each with its own data
 * dir; a Connect client and a gRPC signing client per daemon.
 */
import { randomBytes } from "node:crypto";
import { type Client, createClient } from "@connectrpc/connect";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { transport } from "./clients.js";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "./daemon.js";
import type { EtcdServer } from "./etcd.js";

export interface Fleet {
  readonly daemons: RunningDaemon[];
  readonly creds: Client<typeof CredentialService>[];
  readonly signing: Client<typeof SigningService>[];
  /** The serve arguments every daemon got (store flags and `extraArgs`). */
  readonly args: string[];
  readonly masterKey: string;
  /** Creates an access key credential through daemon `on`. */
  createKey(on: number, name: string, accessKeyId: string, secret: string): Promise<unknown>;
  /** Signs a GetCallerIdentity POST to `url` on daemon `on`. */
  sign(
    on: number,
    credential: string,
    url: string,
  ): ReturnType<Client<typeof SigningService>["signRequest"]>;
  /** Waits until daemon `on` has logged `text` (bounded). */
  logged(on: number, text: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export const STS_BODY = "Action=GetCallerIdentity&Version=2011-06-15";

/** Signs a GetCallerIdentity POST to `url` with `credential`. */
export function signSts(signing: Client<typeof SigningService>, credential: string, url: string) {
  return signing.signRequest({
    credential,
    method: "POST",
    url,
    headers: [{ name: "content-type", value: "application/x-www-form-urlencoded" }],
    payload: { case: "body", value: Buffer.from(STS_BODY) },
    service: "sts",
    region: "us-east-1",
  });
}

/**
 * Signs a GetCallerIdentity with `credential` and sends it to the (fake) STS
 * at `stsEndpoint`: STS's status (200 only when the signature was made with
 * the secret STS knows) and the access key id signed with.
 */
export async function signAndSendSts(
  signing: Client<typeof SigningService>,
  credential: string,
  stsEndpoint: string,
): Promise<{ status: number; accessKeyId: string | undefined }> {
  const signed = await signSts(signing, credential, `${stsEndpoint}/`);
  const res = await fetch(signed.url, {
    method: "POST",
    headers: Object.fromEntries(signed.headers.map((h) => [h.name, h.value])),
    body: STS_BODY,
  });
  await res.text();
  const authorization = signed.headers.find((h) => h.name === "authorization")?.value ?? "";
  return { status: res.status, accessKeyId: /Credential=([^/]+)\//.exec(authorization)?.[1] };
}

export async function startFleet(opts: {
  etcd: EtcdServer;
  size: number;
  prefix: string;
  extraArgs?: string[];
  /** Arguments for daemon `i` only. */
  argsOf?: (i: number) => string[];
}): Promise<Fleet> {
  const masterKey = randomBytes(32).toString("base64");
  const args = [
    ...["--store", "etcd", "--etcd-endpoints", opts.etcd.endpoint],
    ...["--etcd-prefix", opts.prefix, ...(opts.extraArgs ?? [])],
  ];
  const dirs = await Promise.all(Array.from({ length: opts.size }, () => tempDir()));
  const started = await Promise.allSettled(
    dirs.map((dataDir, i) =>
      startDaemon({
        dataDir,
        args: [...args, ...(opts.argsOf?.(i) ?? [])],
        env: { CREDBROKER_MASTER_KEY: masterKey },
      }),
    ),
  );
  const daemons = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const failed = started.find((s) => s.status === "rejected");
  if (failed !== undefined) {
    // Nothing outlives a fleet that did not start.
    await Promise.all(daemons.map((d) => d.stop()));
    for (const d of dirs) await removeDir(d);
    throw failed.reason;
  }
  const creds = daemons.map((d) =>
    createClient(CredentialService, transport(d.url, "connect-h2", d.token)),
  );
  const signing = daemons.map((d) =>
    createClient(SigningService, transport(d.url, "grpc-h2", d.token)),
  );
  const at = <T>(list: T[], i: number): T => {
    const item = list[i];
    if (item === undefined) throw new Error(`no daemon ${i}`);
    return item;
  };
  return {
    daemons,
    creds,
    signing,
    args,
    masterKey,
    createKey: (on, name, accessKeyId, secretAccessKey) =>
      at(creds, on).createCredential({
        credential: {
          name,
          allowedHosts: ["127.0.0.1"],
          kind: { case: "accessKey", value: { accessKeyId, secretAccessKey } },
        },
      }),
    sign: (on, credential, url) => signSts(at(signing, on), credential, url),
    async logged(on, text, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!at(daemons, on).output().includes(text)) {
        if (Date.now() > deadline) throw new Error(`daemon ${on} never logged "${text}"`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      await Promise.all(daemons.map((d) => d.stop()));
      for (const d of dirs) await removeDir(d);
    },
  };
}
