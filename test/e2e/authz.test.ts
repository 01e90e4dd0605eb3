/**
 * Who may do what, over the real daemon: every RPC × every role × own,
 * other and shared namespaces gives the expected code. A credential in
 * another namespace is not_found (existence does not leak); a visible one
 * with a forbidden action is permission_denied.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { toJsonString } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { CallerRole } from "../../gen/credbroker/v1/caller_pb.js";
import {
  CallerService,
  ListCallersResponseSchema,
} from "../../gen/credbroker/v1/caller_service_pb.js";
import { ReadAccess } from "../../gen/credbroker/v1/credential_pb.js";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { transport } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";

type Who = "admin" | "writer-a" | "reader-a" | "signer-a" | "signer-b" | "writer-b";
type Expect = "ok" | Code;

interface Clients {
  creds: Client<typeof CredentialService>;
  signing: Client<typeof SigningService>;
  callers: Client<typeof CallerService>;
}

const ROLES: Record<Exclude<Who, "admin">, [CallerRole, string]> = {
  "writer-a": [CallerRole.WRITER, "a"],
  "reader-a": [CallerRole.READER, "a"],
  "signer-a": [CallerRole.SIGNER, "a"],
  "signer-b": [CallerRole.SIGNER, "b"],
  "writer-b": [CallerRole.WRITER, "b"],
};

const key = (id: string) => ({
  case: "accessKey" as const,
  value: { accessKeyId: id, secretAccessKey: `secret-${id}-0000000000000000000000` },
});

async function outcome(call: Promise<unknown>): Promise<Expect> {
  try {
    await call;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("authorization: RPC × role × namespace", () => {
  let daemon: RunningDaemon;
  const clients = new Map<Who, Clients>();
  const tokens = new Map<Who, string>();
  const client = (who: Who): Clients => {
    const c = clients.get(who);
    assert.ok(c);
    return c;
  };
  const connect = (token: string): Clients => {
    const t = transport(daemon.url, "connect-h2", token);
    return {
      creds: createClient(CredentialService, t),
      signing: createClient(SigningService, t),
      callers: createClient(CallerService, t),
    };
  };

  before(async () => {
    daemon = await startDaemon({ args: ["--container-listen", "127.0.0.1:0"] });
    clients.set("admin", connect(daemon.token));
    const admin = client("admin");
    for (const [who, [role, ns]] of Object.entries(ROLES) as [
      Exclude<Who, "admin">,
      [CallerRole, string],
    ][]) {
      const res = await admin.callers.createCaller({
        caller: { name: who, role, namespaces: [ns] },
      });
      assert.match(res.token, /^cbt_/);
      tokens.set(who, res.token);
      clients.set(who, connect(res.token));
    }
    const creds = admin.creds;
    await creds.createCredential({
      credential: {
        namespace: "a",
        name: "key",
        kind: key("AKIAAAAAAAAAAAAAAAA1"),
        allowedInTasks: true,
      },
    });
    await creds.createCredential({
      credential: { namespace: "b", name: "key", kind: key("AKIABBBBBBBBBBBBBBB1") },
    });
    await creds.createCredential({
      credential: {
        namespace: "a",
        name: "global",
        kind: key("AKIAAAAAAAAAAAAAAAA2"),
        readAccess: ReadAccess.GLOBAL,
      },
    });
    await creds.createCredential({
      credential: {
        namespace: "a",
        name: "for-b",
        kind: key("AKIAAAAAAAAAAAAAAAA3"),
        readAccess: ReadAccess.SPECIFIC_NAMESPACES,
        sharedNamespaces: ["b"],
      },
    });
  });

  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
  });

  const sign = (c: Clients, namespace: string, credential: string) =>
    c.signing.signRequest({
      namespace,
      credential,
      method: "GET",
      url: "https://bucket.s3.amazonaws.com/k",
    });

  // [who, what, expected]
  const table: [Who, string, (c: Clients) => Promise<unknown>, Expect][] = [
    // writer in a
    ["writer-a", "Get a/key", (c) => c.creds.getCredential({ namespace: "a", name: "key" }), "ok"],
    [
      "writer-a",
      "Get b/key",
      (c) => c.creds.getCredential({ namespace: "b", name: "key" }),
      Code.NotFound,
    ],
    ["writer-a", "List a", (c) => c.creds.listCredentials({ namespace: "a" }), "ok"],
    [
      "writer-a",
      "List b",
      (c) => c.creds.listCredentials({ namespace: "b" }),
      Code.PermissionDenied,
    ],
    [
      "writer-a",
      "Create a/new",
      (c) =>
        c.creds.createCredential({
          credential: { namespace: "a", name: "w-new", kind: key("AKIAAAAAAAAAAAAAAAA9") },
        }),
      "ok",
    ],
    [
      "writer-a",
      "Create b/new",
      (c) =>
        c.creds.createCredential({
          credential: { namespace: "b", name: "w-new", kind: key("AKIAAAAAAAAAAAAAAAA9") },
        }),
      Code.PermissionDenied,
    ],
    [
      "writer-a",
      "Update a/key",
      (c) =>
        c.creds.updateCredential({
          namespace: "a",
          name: "key",
          credential: { description: "w" },
          updateMask: { paths: ["description"] },
        }),
      "ok",
    ],
    [
      "writer-a",
      "Update b/key",
      (c) =>
        c.creds.updateCredential({
          namespace: "b",
          name: "key",
          credential: { description: "w" },
          updateMask: { paths: ["description"] },
        }),
      Code.NotFound,
    ],
    [
      "writer-a",
      "Delete a/w-new",
      (c) => c.creds.deleteCredential({ namespace: "a", name: "w-new" }),
      "ok",
    ],
    [
      "writer-a",
      "Delete b/key",
      (c) => c.creds.deleteCredential({ namespace: "b", name: "key" }),
      Code.NotFound,
    ],
    [
      "writer-a",
      "Verify a/key",
      (c) =>
        c.creds.verifyCredential({
          target: { case: "stored", value: { namespace: "a", name: "key" } },
        }),
      "ok",
    ],
    ["writer-a", "Sign a/key", (c) => sign(c, "a", "key"), Code.PermissionDenied],
    ["writer-a", "Sign b/key", (c) => sign(c, "b", "key"), Code.NotFound],
    ["writer-a", "ListCallers", (c) => c.callers.listCallers({}), Code.PermissionDenied],
    // reader in a
    ["reader-a", "Get a/key", (c) => c.creds.getCredential({ namespace: "a", name: "key" }), "ok"],
    ["reader-a", "List a", (c) => c.creds.listCredentials({ namespace: "a" }), "ok"],
    [
      "reader-a",
      "Create a/new",
      (c) =>
        c.creds.createCredential({
          credential: { namespace: "a", name: "r-new", kind: key("AKIAAAAAAAAAAAAAAAA9") },
        }),
      Code.PermissionDenied,
    ],
    [
      "reader-a",
      "Update a/key",
      (c) =>
        c.creds.updateCredential({
          namespace: "a",
          name: "key",
          credential: { description: "r" },
          updateMask: { paths: ["description"] },
        }),
      Code.PermissionDenied,
    ],
    [
      "reader-a",
      "Delete a/key",
      (c) => c.creds.deleteCredential({ namespace: "a", name: "key" }),
      Code.PermissionDenied,
    ],
    [
      "reader-a",
      "Verify a/key",
      (c) =>
        c.creds.verifyCredential({
          target: { case: "stored", value: { namespace: "a", name: "key" } },
        }),
      "ok",
    ],
    [
      "reader-a",
      "Verify b/key",
      (c) =>
        c.creds.verifyCredential({
          target: { case: "stored", value: { namespace: "b", name: "key" } },
        }),
      Code.NotFound,
    ],
    ["reader-a", "Sign a/key", (c) => sign(c, "a", "key"), Code.PermissionDenied],
    [
      "reader-a",
      "Get b/key",
      (c) => c.creds.getCredential({ namespace: "b", name: "key" }),
      Code.NotFound,
    ],
    // signer in a
    ["signer-a", "Sign a/key", (c) => sign(c, "a", "key"), "ok"],
    ["signer-a", "Sign b/key", (c) => sign(c, "b", "key"), Code.NotFound],
    [
      "signer-a",
      "Get a/key",
      (c) => c.creds.getCredential({ namespace: "a", name: "key" }),
      Code.PermissionDenied,
    ],
    [
      "signer-a",
      "List a",
      (c) => c.creds.listCredentials({ namespace: "a" }),
      Code.PermissionDenied,
    ],
    [
      "signer-a",
      "Update a/key",
      (c) =>
        c.creds.updateCredential({
          namespace: "a",
          name: "key",
          credential: { description: "s" },
          updateMask: { paths: ["description"] },
        }),
      Code.PermissionDenied,
    ],
    [
      "signer-a",
      "Binding a/key",
      (c) => c.signing.createContainerBinding({ namespace: "a", credential: "key" }),
      "ok",
    ],
    [
      "signer-a",
      "Binding b/key",
      (c) => c.signing.createContainerBinding({ namespace: "b", credential: "key" }),
      Code.NotFound,
    ],
    ["signer-a", "Sign a default (none set)", (c) => sign(c, "a", ""), Code.NotFound],
    ["signer-a", "Sign b default", (c) => sign(c, "b", ""), Code.PermissionDenied],
    // signer in b: shared credentials
    ["signer-b", "Sign a/global (GLOBAL)", (c) => sign(c, "a", "global"), "ok"],
    ["signer-b", "Sign a/for-b (SPECIFIC b)", (c) => sign(c, "a", "for-b"), "ok"],
    ["signer-b", "Sign a/key (not shared)", (c) => sign(c, "a", "key"), Code.NotFound],
    [
      "signer-b",
      "Get a/global (sharing lends signing only)",
      (c) => c.creds.getCredential({ namespace: "a", name: "global" }),
      Code.PermissionDenied,
    ],
    ["signer-b", "Sign b/key", (c) => sign(c, "b", "key"), "ok"],
    ["signer-a", "Sign a/for-b (own namespace)", (c) => sign(c, "a", "for-b"), "ok"],
    // writer in b: shared, but not a signer; never the right to change
    ["writer-b", "Sign a/global", (c) => sign(c, "a", "global"), Code.PermissionDenied],
    [
      "writer-b",
      "Update a/for-b",
      (c) =>
        c.creds.updateCredential({
          namespace: "a",
          name: "for-b",
          credential: { description: "x" },
          updateMask: { paths: ["description"] },
        }),
      Code.PermissionDenied,
    ],
    [
      "writer-b",
      "Delete a/global",
      (c) => c.creds.deleteCredential({ namespace: "a", name: "global" }),
      Code.PermissionDenied,
    ],
    [
      "writer-b",
      "Get a/key",
      (c) => c.creds.getCredential({ namespace: "a", name: "key" }),
      Code.NotFound,
    ],
    // admin
    ["admin", "Get b/key", (c) => c.creds.getCredential({ namespace: "b", name: "key" }), "ok"],
    ["admin", "Sign b/key", (c) => sign(c, "b", "key"), "ok"],
    ["admin", "ListCallers", (c) => c.callers.listCallers({}), "ok"],
  ];

  for (const [who, what, call, expected] of table) {
    test(`${who}: ${what} → ${expected === "ok" ? "ok" : Code[expected]}`, async () => {
      assert.equal(await outcome(call(client(who))), expected);
    });
  }

  test("every audited call of the table left its line: caller, RPC, decision; no token in the file", async () => {
    const raw = await readFile(path.join(daemon.dataDir, "audit.log"), "utf8");
    const lines = raw
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { caller?: string; rpc: string; decision: string });
    const audited: Record<string, string> = {
      Sign: "/credbroker.v1.SigningService/SignRequest",
      Create: "/credbroker.v1.CredentialService/CreateCredential",
      Update: "/credbroker.v1.CredentialService/UpdateCredential",
      Delete: "/credbroker.v1.CredentialService/DeleteCredential",
      Binding: "/credbroker.v1.SigningService/CreateContainerBinding",
    };
    for (const [who, what, , expected] of table) {
      const rpc = audited[what.split(" ")[0] ?? ""];
      if (rpc === undefined) continue;
      // Every NotFound of the table but the provider default's is a credential outside the caller's namespaces: a denial.
      const hidden = expected === Code.NotFound && !what.includes("default");
      const decision =
        expected === "ok"
          ? "allow"
          : expected === Code.PermissionDenied || hidden
            ? "deny"
            : "error";
      assert.ok(
        lines.some((l) => l.caller === who && l.rpc === rpc && l.decision === decision),
        `${who}: ${what} has a ${decision} line`,
      );
    }
    for (const token of tokens.values()) assert.ok(!raw.includes(token));
  });

  test("a container binding can be ended only by its creator (or an admin)", async () => {
    const binding = await client("signer-a").signing.createContainerBinding({
      namespace: "a",
      credential: "key",
    });
    assert.equal(
      await outcome(
        client("signer-b").signing.deleteContainerBinding({ bindingId: binding.bindingId }),
      ),
      Code.NotFound,
    );
    assert.equal(
      await outcome(
        client("signer-a").signing.deleteContainerBinding({ bindingId: binding.bindingId }),
      ),
      "ok",
    );
  });

  test("disabled, expired, rotated and deleted callers are unauthenticated", async () => {
    const admin = client("admin").callers;
    const created = await admin.createCaller({
      caller: { name: "temp", role: CallerRole.READER, namespaces: ["a"] },
    });
    const temp = connect(created.token);
    const probe = () => outcome(temp.creds.listCredentials({ namespace: "a" }));
    assert.equal(await probe(), "ok");
    await admin.updateCaller({
      name: "temp",
      caller: { enabled: false },
      updateMask: { paths: ["enabled"] },
    });
    assert.equal(await probe(), Code.Unauthenticated);
    await admin.updateCaller({
      name: "temp",
      caller: { enabled: true },
      updateMask: { paths: ["enabled"] },
    });
    assert.equal(await probe(), "ok");
    const rotated = await admin.rotateCallerToken({ name: "temp" });
    assert.equal(await probe(), Code.Unauthenticated, "the old token stops at once");
    assert.equal(
      await outcome(connect(rotated.token).creds.listCredentials({ namespace: "a" })),
      "ok",
    );
    await admin.deleteCaller({ name: "temp" });
    assert.equal(
      await outcome(connect(rotated.token).creds.listCredentials({ namespace: "a" })),
      Code.Unauthenticated,
    );
  });

  test("callers: validation and the reserved admin name", async () => {
    const admin = client("admin").callers;
    assert.equal(
      await outcome(admin.createCaller({ caller: { name: "admin", role: CallerRole.READER } })),
      Code.InvalidArgument,
    );
    assert.equal(
      await outcome(admin.createCaller({ caller: { name: "no-role" } })),
      Code.InvalidArgument,
    );
    assert.equal(
      await outcome(admin.createCaller({ caller: { name: "writer-a", role: CallerRole.READER } })),
      Code.AlreadyExists,
    );
    assert.equal(await outcome(admin.getCaller({ name: "nobody" })), Code.NotFound);
    const listed = await admin.listCallers({});
    assert.deepEqual(listed.callers.map((c) => c.name).sort(), [
      "reader-a",
      "signer-a",
      "signer-b",
      "writer-a",
      "writer-b",
    ]);
    for (const token of tokens.values()) {
      assert.ok(!daemon.output().includes(token), "no caller token in the log");
      assert.ok(!toJsonString(ListCallersResponseSchema, listed).includes(token));
    }
  });
});
