/**
 * Every RPC of every service, over every protocol, against the real daemon:
 * each audit line a call writes names what the call touched (namespace and
 * credential, a rename's new name, or the caller a CallerService call is
 * about). Each call is made twice: by an outsider (a reader of another
 * namespace: every call is refused, and every refusal is audited, reads
 * included; only ListContainerBindings, which lists the caller's own, is
 * answered) and by the admin (audited RPCs write lines; reads do not).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type Client, createClient } from "@connectrpc/connect";
import { CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { KeyService } from "../../gen/credbroker/v1/key_service_pb.js";
import { ServerService } from "../../gen/credbroker/v1/server_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { PROTOCOLS, type Protocol, transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";

interface Line {
  rpc: string;
  decision: string;
  namespace?: string;
  credential?: string;
  newName?: string;
  targetCaller?: string;
  line?: string;
}

interface Clients {
  creds: Client<typeof CredentialService>;
  signing: Client<typeof SigningService>;
  callers: Client<typeof CallerService>;
  keys: Client<typeof KeyService>;
  server: Client<typeof ServerService>;
}

type Target = Pick<Line, "namespace" | "credential" | "newName" | "targetCaller">;

interface Row {
  rpc: string;
  /** Audited when it succeeds (a read is audited only when refused). */
  audited: boolean;
  /** Any caller may make it (about its own things): the outsider is not refused either. */
  anyone?: boolean;
  call(c: Clients): Promise<unknown>;
  /** What every line of the call names; for ImportCredentials, what each row line names. */
  target: Target;
}

const accessKey = {
  case: "accessKey",
  value: {
    accessKeyId: "AKIAIOSFODNN7EXAMPLE",
    secretAccessKey: "targetsSECRET0123456789abcdefghijklmnop",
  },
} as const;

/** The table: every RPC of the five services, in an order the admin's calls succeed in. */
function table(ns: string, who: string): Row[] {
  const cr = (rpc: string) => `/credbroker.v1.CredentialService/${rpc}`;
  const sg = (rpc: string) => `/credbroker.v1.SigningService/${rpc}`;
  const ca = (rpc: string) => `/credbroker.v1.CallerService/${rpc}`;
  const ky = (rpc: string) => `/credbroker.v1.KeyService/${rpc}`;
  const sv = (rpc: string) => `/credbroker.v1.ServerService/${rpc}`;
  const caller = `c-${who}`;
  return [
    {
      rpc: cr("CreateCredential"),
      audited: true,
      call: (c) =>
        c.creds.createCredential({ credential: { namespace: ns, name: "new", kind: accessKey } }),
      target: { namespace: ns, credential: "new" },
    },
    {
      rpc: cr("GetCredential"),
      audited: false,
      call: (c) => c.creds.getCredential({ namespace: ns, name: "k" }),
      target: { namespace: ns, credential: "k" },
    },
    {
      rpc: cr("ListCredentials"),
      audited: false,
      call: (c) => c.creds.listCredentials({ namespace: ns }),
      target: { namespace: ns },
    },
    {
      rpc: cr("VerifyCredential"),
      audited: false,
      call: (c) =>
        c.creds.verifyCredential({
          target: { case: "stored", value: { namespace: ns, name: "k" } },
        }),
      target: { namespace: ns, credential: "k" },
    },
    {
      rpc: cr("VerifyCredential"),
      audited: false,
      call: (c) =>
        c.creds.verifyCredential({
          target: { case: "candidate", value: { namespace: ns, name: "cand", kind: accessKey } },
        }),
      target: { namespace: ns, credential: "cand" },
    },
    {
      rpc: sg("SignRequest"),
      audited: true,
      call: (c) =>
        c.signing.signRequest({
          namespace: ns,
          credential: "k",
          method: "GET",
          url: "https://reports.s3.amazonaws.com/2026/q1.csv",
        }),
      target: { namespace: ns, credential: "k" },
    },
    {
      // k has no allowed_hosts: the admin's forward is refused (an error line), nothing is sent.
      rpc: sg("ForwardRequest"),
      audited: true,
      call: (c) =>
        c.signing.forwardRequest({
          namespace: ns,
          credential: "k",
          url: "https://reports.s3.amazonaws.com/2026/q1.csv",
        }),
      target: { namespace: ns, credential: "k" },
    },
    {
      rpc: cr("UpdateCredential"),
      audited: true,
      call: (c) =>
        c.creds.updateCredential({
          namespace: ns,
          name: "k",
          credential: { description: "audited" },
          updateMask: { paths: ["description"] },
        }),
      target: { namespace: ns, credential: "k" },
    },
    {
      rpc: cr("UpdateCredential"),
      audited: true,
      call: (c) =>
        c.creds.updateCredential({
          namespace: ns,
          name: "k",
          credential: { name: "k2" },
          updateMask: { paths: ["name"] },
        }),
      target: { namespace: ns, credential: "k", newName: "k2" },
    },
    {
      rpc: sg("CreateContainerBinding"),
      audited: true,
      call: (c) => c.signing.createContainerBinding({ namespace: ns, credential: "k2" }),
      target: { namespace: ns, credential: "k2" },
    },
    {
      rpc: sg("DeleteContainerBinding"),
      audited: true,
      call: (c) => c.signing.deleteContainerBinding({ bindingId: "no-such-binding" }),
      target: {},
    },
    {
      rpc: sg("ListContainerBindings"),
      audited: false,
      anyone: true,
      call: (c) => c.signing.listContainerBindings({}),
      target: {},
    },
    {
      rpc: cr("ImportCredentials"),
      audited: true,
      call: (c) =>
        c.creds.importCredentials(
          (async function* () {
            yield {
              items: [
                { line: 7n, credential: { namespace: ns, name: "imported", kind: accessKey } },
              ],
            };
          })(),
        ),
      target: { namespace: ns, credential: "imported" },
    },
    {
      rpc: cr("DeleteCredential"),
      audited: true,
      call: (c) => c.creds.deleteCredential({ namespace: ns, name: "k2" }),
      target: { namespace: ns, credential: "k2" },
    },
    {
      rpc: ca("CreateCaller"),
      audited: true,
      call: (c) =>
        c.callers.createCaller({
          caller: { name: caller, role: CallerRole.READER, namespaces: [ns] },
        }),
      target: { targetCaller: caller },
    },
    {
      rpc: ca("GetCaller"),
      audited: false,
      call: (c) => c.callers.getCaller({ name: caller }),
      target: { targetCaller: caller },
    },
    { rpc: ca("ListCallers"), audited: false, call: (c) => c.callers.listCallers({}), target: {} },
    {
      rpc: ca("UpdateCaller"),
      audited: true,
      call: (c) =>
        c.callers.updateCaller({
          name: caller,
          caller: { enabled: false },
          updateMask: { paths: ["enabled"] },
        }),
      target: { targetCaller: caller },
    },
    {
      rpc: ca("RotateCallerToken"),
      audited: true,
      call: (c) => c.callers.rotateCallerToken({ name: caller }),
      target: { targetCaller: caller },
    },
    {
      rpc: ca("DeleteCaller"),
      audited: true,
      call: (c) => c.callers.deleteCaller({ name: caller }),
      target: { targetCaller: caller },
    },
    { rpc: ky("GetKeyStatus"), audited: false, call: (c) => c.keys.getKeyStatus({}), target: {} },
    {
      rpc: sv("GetServerStatus"),
      audited: false,
      call: (c) => c.server.getServerStatus({}),
      target: {},
    },
    {
      rpc: ky("RotateMasterKey"),
      audited: true,
      call: async (c) => {
        for await (const _ of c.keys.rotateMasterKey({})) {
          // drained: the rotation runs to its end
        }
      },
      target: {},
    },
    {
      rpc: ky("RetirePreviousKeys"),
      audited: true,
      call: (c) => c.keys.retirePreviousKeys({}),
      target: {},
    },
  ];
}

const targetOf = (l: Line): Target => {
  const t: Target = {};
  for (const k of ["namespace", "credential", "newName", "targetCaller"] as const) {
    if (l[k] !== undefined) t[k] = l[k];
  }
  return t;
};

describe("audit lines name their targets: every RPC, every protocol", () => {
  let daemon: RunningDaemon;
  let outsiderToken: string;
  let offset = 0;
  /** The lines written since the last call. */
  const newLines = async (): Promise<Line[]> => {
    const text = await readFile(path.join(daemon.dataDir, "audit.log"), "utf8");
    const fresh = text.slice(offset);
    offset = text.length;
    return fresh
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line);
  };
  const clients = (protocol: Protocol, token: string): Clients => {
    const t = transport(daemon.url, protocol, token);
    return {
      creds: createClient(CredentialService, t),
      signing: createClient(SigningService, t),
      callers: createClient(CallerService, t),
      keys: createClient(KeyService, t),
      server: createClient(ServerService, t),
    };
  };

  before(async () => {
    daemon = await startDaemon();
    const admin = clients("connect-h2", daemon.token);
    ({ token: outsiderToken } = await admin.callers.createCaller({
      caller: { name: "outsider", role: CallerRole.READER, namespaces: ["elsewhere"] },
    }));
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
  });

  test("the table covers every RPC of the five services", () => {
    const covered = new Set(table("ns", "x").map((r) => r.rpc));
    for (const service of [
      CredentialService,
      SigningService,
      CallerService,
      KeyService,
      ServerService,
    ]) {
      for (const m of service.methods)
        assert.ok(covered.has(`/${service.typeName}/${m.name}`), m.name);
    }
  });

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: every line of every call names its target`, async () => {
      const ns = `t-${protocol}`;
      const admin = clients(protocol, daemon.token);
      await admin.creds.createCredential({
        credential: { namespace: ns, name: "k", kind: accessKey },
      });
      await newLines();
      const check = async (who: "outsider" | "admin", row: Row, c: Clients) => {
        await row.call(c).catch(() => undefined);
        const lines = (await newLines()).filter((l) => l.rpc === row.rpc);
        const what = `${protocol} ${who} ${row.rpc}`;
        const expectLine = (who === "outsider" && row.anyone !== true) || row.audited;
        if (!expectLine) {
          assert.deepEqual(lines, [], `${what}: a read that succeeds is not audited`);
          return;
        }
        assert.ok(lines.length > 0, `${what}: audited`);
        if (row.rpc.endsWith("/ImportCredentials")) {
          const rows = lines.filter((l) => l.line !== undefined);
          assert.deepEqual(rows.map(targetOf), [row.target], `${what}: the row line`);
          return;
        }
        for (const l of lines) assert.deepEqual(targetOf(l), row.target, `${what} (${l.decision})`);
        if (who === "outsider") {
          // Refused before any authorization (no container listener; k2 exists only after the admin's rename).
          const error = row.rpc.endsWith("ContainerBinding") || row.target.credential === "k2";
          assert.equal(lines.at(-1)?.decision, error ? "error" : "deny", what);
        }
      };
      // The outsider first: every credential the table reads exists, and the outsider may touch none.
      const outsider = clients(protocol, outsiderToken);
      for (const row of table(ns, `o-${protocol}`)) await check("outsider", row, outsider);
      for (const row of table(ns, protocol)) await check("admin", row, admin);
    });
  }
});
