/**
 * moto (https://github.com/getmoto/moto), a widely used AWS emulator, as a
 * second, independent STS for tests: `moto_server` on a free 127.0.0.1 port.
 * Unlike test/support/sts-server.ts (our own stand-in, kept for fault
 * injection), moto is a third party: when it accepts a call, someone other
 * than us agrees the call was signed correctly.
 *
 * moto checks nothing until INITIAL_NO_AUTH_ACTION_COUNT calls have been made;
 * from then on every call's SigV4 signature is recomputed with botocore and a
 * wrong secret is refused (403 SignatureDoesNotMatch), an unknown key too
 * (403 InvalidClientTokenId), and the caller's IAM policies (and, for
 * AssumeRole, the role's trust policy) must allow the action. The bootstrap
 * calls create an admin user that may do anything, and its access key;
 * everything after them is signed with that key (here, with smithy's
 * SignatureV4: an independent signer) and verified. startMoto checks that
 * moto refuses a wrong secret before handing it out.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";

/** moto's default account: every ARN it makes is in it. */
export const MOTO_ACCOUNT = "123456789012";

export interface MotoKey {
  accessKeyId: string;
  secretAccessKey: string;
  /** The IAM user's ARN. */
  arn: string;
}

export interface MotoRole {
  /** Caller ARNs its trust policy lets assume it. */
  trusted: string[];
  /** When set, the trust policy requires this sts:ExternalId. */
  externalId?: string;
}

/** One query-protocol answer, as moto sent it. */
export interface MotoAnswer {
  status: number;
  body: string;
}

export interface Moto {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  /** MOTO_ACCOUNT: every user and role is made in it. */
  readonly account: string;
  /** The bootstrap admin's key: allowed every action. */
  readonly admin: MotoKey;
  /** A new IAM user allowed every sts:* action, with one access key. */
  createUser(name: string): Promise<MotoKey>;
  /** A new IAM role; returns its ARN. */
  createRole(name: string, role: MotoRole): Promise<string>;
  /** A query-protocol call (POST, form body) signed with `key` by smithy's SignatureV4. */
  call(
    service: "iam" | "sts",
    params: Record<string, string>,
    key?: Pick<MotoKey, "accessKeyId" | "secretAccessKey">,
  ): Promise<MotoAnswer>;
  /** Everything moto wrote to stdout and stderr so far. */
  output(): string;
  /** Stops moto_server by its PID and waits for the exit. */
  stop(): Promise<void>;
}

const REGION = "us-east-1";
const VERSIONS = { iam: "2010-05-08", sts: "2011-06-15" } as const;
const ALLOW_ALL = policy("*");
const READY_WITHIN_MS = 30_000;
/** Any key signs the bootstrap calls (moto routes by the scope, checks nothing yet). */
const BOOTSTRAP_SIGNER = { accessKeyId: "AKIAMOTOBOOTSTRAP000", secretAccessKey: "bootstrap" };
const ADMIN = "moto-admin";

/** The unauthenticated calls that set moto up; INITIAL_NO_AUTH_ACTION_COUNT is their number. */
const BOOTSTRAP: Record<string, string>[] = [
  { Action: "CreateUser", UserName: ADMIN },
  { Action: "PutUserPolicy", UserName: ADMIN, PolicyName: "all", PolicyDocument: ALLOW_ALL },
  { Action: "CreateAccessKey", UserName: ADMIN },
];

function policy(action: string): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: action, Resource: "*" }],
  });
}

/** The text of the first `<tag>` element in `xml` (moto's answers are flat enough for this). */
export function xmlField(xml: string, tag: string): string | undefined {
  return new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1];
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function query(
  endpoint: string,
  service: "iam" | "sts",
  params: Record<string, string>,
  key: Pick<MotoKey, "accessKeyId" | "secretAccessKey">,
): Promise<MotoAnswer> {
  const url = new URL(endpoint);
  const body = new URLSearchParams({ Version: VERSIONS[service], ...params }).toString();
  const signer = new SignatureV4({
    service,
    region: REGION,
    credentials: key,
    sha256: Hash.bind(null, "sha256"),
  });
  const signed = await signer.sign(
    new HttpRequest({
      method: "POST",
      protocol: url.protocol,
      hostname: url.hostname,
      port: Number(url.port),
      path: "/",
      headers: {
        host: url.host,
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
      },
      body,
    }),
  );
  const res = await fetch(`${endpoint}/`, { method: "POST", headers: signed.headers, body });
  return { status: res.status, body: await res.text() };
}

function expectOk(what: string, answer: MotoAnswer): string {
  if (answer.status !== 200) {
    throw new Error(`moto ${what}: ${answer.status} ${xmlField(answer.body, "Code") ?? ""}`);
  }
  return answer.body;
}

class MotoServer implements Moto {
  readonly account = MOTO_ACCOUNT;
  admin: MotoKey = { accessKeyId: "", secretAccessKey: "", arn: "" };
  private log = "";
  private readonly exited: Promise<void>;

  constructor(
    readonly endpoint: string,
    private readonly child: ChildProcess,
  ) {
    const onData = (d: Buffer) => {
      this.log += d.toString();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  output(): string {
    return this.log;
  }

  running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves once moto answers its own API (which counts as no action). */
  async ready(): Promise<void> {
    const until = Date.now() + READY_WITHIN_MS;
    while (Date.now() < until) {
      if (!this.running()) throw new Error(`moto_server exited before answering:\n${this.log}`);
      const ok = await fetch(`${this.endpoint}/moto-api/config`, {
        signal: AbortSignal.timeout(2000),
      }).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`moto_server did not answer within ${READY_WITHIN_MS / 1000} s:\n${this.log}`);
  }

  async bootstrap(): Promise<void> {
    let created = "";
    for (const params of BOOTSTRAP) {
      created = expectOk(
        `bootstrap ${params.Action}`,
        await query(this.endpoint, "iam", params, BOOTSTRAP_SIGNER),
      );
    }
    this.admin = {
      accessKeyId: xmlField(created, "AccessKeyId") ?? "",
      secretAccessKey: xmlField(created, "SecretAccessKey") ?? "",
      arn: `arn:aws:iam::${MOTO_ACCOUNT}:user/${ADMIN}`,
    };
    // Past the bootstrap moto must verify: a wrong secret is refused.
    const wrong = await this.call(
      "sts",
      { Action: "GetCallerIdentity" },
      { accessKeyId: this.admin.accessKeyId, secretAccessKey: "not-the-secret" },
    );
    if (wrong.status !== 403 || xmlField(wrong.body, "Code") !== "SignatureDoesNotMatch") {
      throw new Error(`moto does not verify signatures: a wrong secret got ${wrong.status}`);
    }
  }

  call(
    service: "iam" | "sts",
    params: Record<string, string>,
    key: Pick<MotoKey, "accessKeyId" | "secretAccessKey"> = this.admin,
  ): Promise<MotoAnswer> {
    return query(this.endpoint, service, params, key);
  }

  async createUser(name: string): Promise<MotoKey> {
    expectOk("CreateUser", await this.call("iam", { Action: "CreateUser", UserName: name }));
    expectOk(
      "PutUserPolicy",
      await this.call("iam", {
        Action: "PutUserPolicy",
        UserName: name,
        PolicyName: "sts",
        PolicyDocument: policy("sts:*"),
      }),
    );
    const key = expectOk(
      "CreateAccessKey",
      await this.call("iam", { Action: "CreateAccessKey", UserName: name }),
    );
    return {
      accessKeyId: xmlField(key, "AccessKeyId") ?? "",
      secretAccessKey: xmlField(key, "SecretAccessKey") ?? "",
      arn: `arn:aws:iam::${MOTO_ACCOUNT}:user/${name}`,
    };
  }

  async createRole(name: string, role: MotoRole): Promise<string> {
    const trust = JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { AWS: role.trusted },
          Action: "sts:AssumeRole",
          ...(role.externalId !== undefined
            ? { Condition: { StringEquals: { "sts:ExternalId": role.externalId } } }
            : {}),
        },
      ],
    });
    const created = expectOk(
      "CreateRole",
      await this.call("iam", {
        Action: "CreateRole",
        RoleName: name,
        AssumeRolePolicyDocument: trust,
      }),
    );
    return xmlField(created, "Arn") ?? "";
  }

  async stop(): Promise<void> {
    if (this.running()) this.child.kill("SIGTERM");
    await this.exited;
  }
}

/**
 * Starts moto_server on a free 127.0.0.1 port, waits until it answers, makes
 * the bootstrap calls and checks that it verifies signatures from then on.
 * A port taken between choosing and binding it is retried with another.
 */
export async function startMoto(): Promise<Moto> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn("moto_server", ["-H", "127.0.0.1", "-p", String(port)], {
      env: {
        ...process.env,
        INITIAL_NO_AUTH_ACTION_COUNT: String(BOOTSTRAP.length),
        PYTHONUNBUFFERED: "1",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const spawned = new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (err) =>
        reject(
          new Error(
            `moto_server could not be started (${err.message}): it must be on PATH (scripts/test-deps.sh checks)`,
          ),
        ),
      );
    });
    await spawned;
    const moto = new MotoServer(`http://127.0.0.1:${port}`, child);
    try {
      await moto.ready();
      await moto.bootstrap();
      return moto;
    } catch (err) {
      await moto.stop();
      if (attempt < 3 && /Address already in use/.test(moto.output())) continue;
      throw err;
    }
  }
}
