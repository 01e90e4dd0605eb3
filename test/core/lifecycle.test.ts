import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { clone, create, equals, toJsonString } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AccessKeySchema,
  AccessScopeSchema,
  type Credential,
  CredentialSchema,
  Provider,
  ReadAccess,
  RoleSchema,
  TokenSchema,
} from "../../gen/credbroker/v1/credential_pb.js";
import {
  applyUpdate,
  DEFAULT_ROLE_DURATION_SECONDS,
  prepareNew,
  UPDATABLE_PATHS,
} from "../../src/core/lifecycle.js";
import { redact } from "../../src/core/redact.js";
import { validateCredential } from "../../src/core/validate.js";
import {
  accessKeyInput,
  BEARER_TOKEN,
  domainError,
  edited,
  FIXED_NOW,
  roleInput,
  SECRET_ACCESS_KEY,
  SESSION_TOKEN,
  TestAmbient,
  tokenInput,
} from "./fixtures.js";

const HOUR = 3_600_000;

function timeOf(c: Credential, field: "createdAt" | "updatedAt"): number {
  const ts = c[field];
  assert.ok(ts, `${field} set`);
  return timestampDate(ts).getTime();
}

describe("prepareNew", () => {
  test("fills id and timestamps from the ambient and clears the etag", () => {
    const ambient = new TestAmbient();
    const input = edited(accessKeyInput(), (c) => {
      c.id = "caller-chosen";
      c.etag = "caller-etag";
      c.createdAt = timestampFromDate(new Date(0));
      c.updatedAt = timestampFromDate(new Date(0));
    });
    const c = prepareNew(input, ambient);
    assert.equal(c.id, TestAmbient.idFor(1));
    assert.equal(timeOf(c, "createdAt"), FIXED_NOW.getTime());
    assert.equal(timeOf(c, "updatedAt"), FIXED_NOW.getTime());
    assert.equal(c.etag, "");
    assert.doesNotThrow(() => validateCredential(c));
  });

  test("successive credentials get successive ids", () => {
    const ambient = new TestAmbient();
    const ids = [1, 2, 3].map(() => prepareNew(tokenInput(), ambient).id);
    assert.deepEqual(ids, [1, 2, 3].map(TestAmbient.idFor));
  });

  test("does not modify its input", () => {
    const input = edited(roleInput(), (c) => {
      c.allowedHosts = ["UPPER.example.com"];
      if (c.kind.case === "role") {
        c.kind.value.externalId = "";
        c.kind.value.durationSeconds = 0;
      }
    });
    const before = clone(CredentialSchema, input);
    prepareNew(input, new TestAmbient());
    assert.ok(equals(CredentialSchema, input, before));
  });

  test("an unset provider becomes AWS; a set one is kept", () => {
    const ambient = new TestAmbient();
    const unset = edited(accessKeyInput(), (c) => {
      c.provider = Provider.UNSPECIFIED;
    });
    assert.equal(prepareNew(unset, ambient).provider, Provider.AWS);
    assert.equal(prepareNew(tokenInput(), ambient).provider, Provider.GENERIC);
  });

  test("an unset enabled becomes true; false is kept", () => {
    const ambient = new TestAmbient();
    assert.equal(prepareNew(accessKeyInput(), ambient).enabled, true);
    const off = edited(accessKeyInput(), (c) => {
      c.enabled = false;
    });
    assert.equal(prepareNew(off, ambient).enabled, false);
  });

  test("lowercases allowed hosts", () => {
    const input = edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["*.S3.AmazonAWS.com", "MinIO.Local", "[::1]"];
    });
    assert.deepEqual(prepareNew(input, new TestAmbient()).allowedHosts, [
      "*.s3.amazonaws.com",
      "minio.local",
      "[::1]",
    ]);
  });

  test("a role without external id gets one from newId, and duration 3600", () => {
    const input = edited(roleInput(), (c) => {
      if (c.kind.case !== "role") throw new Error("role fixture");
      c.kind.value.externalId = "";
      c.kind.value.durationSeconds = 0;
    });
    const c = prepareNew(input, new TestAmbient());
    assert.equal(c.kind.case, "role");
    if (c.kind.case !== "role") return;
    assert.equal(c.id, TestAmbient.idFor(1));
    assert.equal(c.kind.value.externalId, TestAmbient.idFor(2));
    assert.equal(c.kind.value.durationSeconds, DEFAULT_ROLE_DURATION_SECONDS);
    assert.equal(DEFAULT_ROLE_DURATION_SECONDS, 3600);
    assert.doesNotThrow(() => validateCredential(c));
  });

  test("a role's given external id and duration are kept", () => {
    const input = edited(roleInput(), (c) => {
      if (c.kind.case !== "role") throw new Error("role fixture");
      c.kind.value.externalId = "given-external";
      c.kind.value.durationSeconds = 900;
    });
    const c = prepareNew(input, new TestAmbient());
    if (c.kind.case !== "role") throw new Error("still a role");
    assert.equal(c.kind.value.externalId, "given-external");
    assert.equal(c.kind.value.durationSeconds, 900);
  });

  test("keeps secrets and every other field", () => {
    const input = edited(accessKeyInput(), (c) => {
      if (c.kind.case === "accessKey") c.kind.value.sessionToken = SESSION_TOKEN;
    });
    const c = prepareNew(input, new TestAmbient());
    const expected = clone(CredentialSchema, input);
    expected.id = c.id;
    expected.createdAt = c.createdAt;
    expected.updatedAt = c.updatedAt;
    expected.enabled = true;
    expected.readAccess = ReadAccess.NAMESPACE;
    assert.ok(equals(CredentialSchema, c, expected));
  });
});

/** A stored credential: prepared at FIXED_NOW, with an etag as a store would set. */
function stored(input: Credential): Credential {
  const c = prepareNew(input, new TestAmbient());
  c.etag = "etag-1";
  return c;
}

/** An ambient one hour after FIXED_NOW, for updates. */
function later(): TestAmbient {
  const ambient = new TestAmbient();
  ambient.advance(HOUR);
  return ambient;
}

/** A patch that differs from accessKeyInput() in every field. */
function everythingDifferent(): Credential {
  return create(CredentialSchema, {
    id: "patch-id",
    namespace: "patch-ns",
    name: "patched-name",
    provider: Provider.GENERIC,
    region: "ap-south-1",
    description: "patched description",
    metadata: { patched: "yes" },
    principalName: "patched-principal",
    providerDefault: true,
    allowedInTasks: true,
    enabled: false,
    createdAt: timestampFromDate(new Date(1)),
    updatedAt: timestampFromDate(new Date(2)),
    expiresAt: timestampFromDate(new Date(FIXED_NOW.getTime() + 48 * HOUR)),
    allowedHosts: ["Patched.Example.com"],
    allowedScopes: [
      create(AccessScopeSchema, { bucket: "patched", prefixes: [], actions: ["list_bucket"] }),
    ],
    etag: "patch-etag",
    readAccess: ReadAccess.SPECIFIC_NAMESPACES,
    sharedNamespaces: ["team-b"],
    kind: {
      case: "accessKey",
      value: create(AccessKeySchema, {
        accessKeyId: "AKIAPATCHEDPATCHED00",
        secretAccessKey: "patched-secret",
        sessionToken: "patched-session",
      }),
    },
  });
}

describe("applyUpdate", () => {
  test("an empty mask is invalid_argument", () => {
    const current = stored(accessKeyInput());
    assert.throws(
      () => applyUpdate(current, everythingDifferent(), [], later()),
      domainError("invalid_argument", "update_mask"),
    );
  });

  for (const path of ["nope", "kind", "access_key.nope", "access_key.secret_access_key.x", ""]) {
    test(`unknown path ${JSON.stringify(path)} is invalid_argument, not quoted`, () => {
      const current = stored(accessKeyInput());
      assert.throws(
        () => applyUpdate(current, everythingDifferent(), [path], later()),
        domainError("invalid_argument", "update_mask", "unknown field path"),
      );
    });
  }

  test("an unknown path is not quoted back (the caller's text may be anything)", () => {
    const current = stored(accessKeyInput());
    for (const path of ["MARKERs3cr3tPath", "access_key.MARKERs3cr3tPath"]) {
      assert.throws(
        () => applyUpdate(current, everythingDifferent(), [path], later()),
        (err: unknown) => !(err as Error).message.includes("MARKERs3cr3tPath"),
      );
    }
  });

  for (const path of ["id", "namespace", "created_at", "updated_at", "etag"]) {
    test(`output-only or immutable path ${path} is invalid_argument`, () => {
      const current = stored(accessKeyInput());
      const before = clone(CredentialSchema, current);
      assert.throws(
        () => applyUpdate(current, everythingDifferent(), ["description", path], later()),
        domainError("invalid_argument", path, "cannot be updated"),
      );
      assert.ok(equals(CredentialSchema, current, before), "current is not modified");
    });
  }

  test("a kind field path on a credential of another kind is invalid_argument", () => {
    const current = stored(accessKeyInput());
    const patch = edited(roleInput(), () => undefined);
    assert.throws(
      () => applyUpdate(current, patch, ["role.role_arn"], later()),
      domainError("invalid_argument", "role.role_arn", "not a role"),
    );
  });

  test("a kind path whose kind the patch does not set is invalid_argument", () => {
    const current = stored(accessKeyInput());
    assert.throws(
      () => applyUpdate(current, tokenInput(), ["access_key.secret_access_key"], later()),
      domainError("invalid_argument", "access_key.secret_access_key", "credential.access_key"),
    );
    assert.throws(
      () => applyUpdate(current, tokenInput(), ["access_key"], later()),
      domainError("invalid_argument", "credential.access_key"),
    );
  });

  test("naming the kind replaces the whole kind", () => {
    const current = stored(accessKeyInput());
    const next = applyUpdate(current, tokenInput(), ["token"], later());
    assert.equal(next.kind.case, "token");
    if (next.kind.case !== "token") return;
    assert.equal(next.kind.value.token, BEARER_TOKEN);
    assert.equal(next.id, current.id);
    assert.equal(next.name, current.name);
  });

  test("replacing with a role normalizes the new role (external id, duration)", () => {
    const current = stored(accessKeyInput());
    const patch = create(CredentialSchema, {
      kind: {
        case: "role",
        value: create(RoleSchema, {
          roleArn: "arn:aws:iam::123456789012:role/R",
          sourceCredential: "src",
        }),
      },
    });
    const ambient = later();
    const next = applyUpdate(current, patch, ["role"], ambient);
    if (next.kind.case !== "role") throw new Error("expected a role");
    assert.equal(next.kind.value.externalId, TestAmbient.idFor(1));
    assert.equal(next.kind.value.durationSeconds, 3600);
  });

  test("a mask of one field changes that field only, however much the patch sets", () => {
    const current = stored(accessKeyInput());
    const ambient = later();
    const next = applyUpdate(current, everythingDifferent(), ["description"], ambient);
    const expected = clone(CredentialSchema, current);
    expected.description = "patched description";
    expected.updatedAt = timestampFromDate(ambient.now());
    assert.ok(equals(CredentialSchema, next, expected));
  });

  // Every top-level path: the patch's value lands, nothing else changes.
  const topLevel: [path: string, set: (to: Credential, from: Credential) => void][] = [
    [
      "name",
      (t, f) => {
        t.name = f.name;
      },
    ],
    [
      "provider",
      (t, f) => {
        t.provider = f.provider;
      },
    ],
    [
      "region",
      (t, f) => {
        t.region = f.region;
      },
    ],
    [
      "description",
      (t, f) => {
        t.description = f.description;
      },
    ],
    [
      "metadata",
      (t, f) => {
        t.metadata = { ...f.metadata };
      },
    ],
    [
      "principal_name",
      (t, f) => {
        t.principalName = f.principalName;
      },
    ],
    [
      "provider_default",
      (t, f) => {
        t.providerDefault = f.providerDefault;
      },
    ],
    [
      "allowed_in_tasks",
      (t, f) => {
        t.allowedInTasks = f.allowedInTasks;
      },
    ],
    [
      "enabled",
      (t, f) => {
        t.enabled = f.enabled;
      },
    ],
    [
      "expires_at",
      (t, f) => {
        t.expiresAt = f.expiresAt;
      },
    ],
    [
      "allowed_hosts",
      (t) => {
        t.allowedHosts = ["patched.example.com"];
      },
    ],
    [
      "allowed_scopes",
      (t, f) => {
        t.allowedScopes = f.allowedScopes;
      },
    ],
    [
      "read_access",
      (t, f) => {
        t.readAccess = f.readAccess;
      },
    ],
    [
      "shared_namespaces",
      (t, f) => {
        t.sharedNamespaces = f.sharedNamespaces;
      },
    ],
    [
      "token_scopes",
      (t, f) => {
        t.tokenScopes = [...f.tokenScopes];
      },
    ],
  ];
  for (const [path, set] of topLevel) {
    test(`mask [${path}] applies exactly ${path}`, () => {
      const current = stored(accessKeyInput());
      const patch = everythingDifferent();
      const ambient = later();
      const next = applyUpdate(current, patch, [path], ambient);
      const expected = clone(CredentialSchema, current);
      set(expected, patch);
      expected.updatedAt = timestampFromDate(ambient.now());
      assert.ok(
        equals(CredentialSchema, next, expected),
        `${path}: ${toJsonString(CredentialSchema, next)}`,
      );
    });
  }

  test("every top-level path of UPDATABLE_PATHS is covered above", () => {
    const covered = new Set(topLevel.map(([p]) => p));
    const top = UPDATABLE_PATHS.filter(
      (p) =>
        !p.includes(".") &&
        !["access_key", "role", "token", "service_principal", "service_account"].includes(p),
    );
    assert.deepEqual([...top].sort(), [...covered].sort());
  });

  test("a mask without the secret keeps the secret", () => {
    const current = stored(
      edited(accessKeyInput(), (c) => {
        if (c.kind.case === "accessKey") c.kind.value.sessionToken = SESSION_TOKEN;
      }),
    );
    const patch = create(CredentialSchema, {
      kind: {
        case: "accessKey",
        value: create(AccessKeySchema, { accessKeyId: "AKIANEWNEWNEWNEWNEW0" }),
      },
    });
    const next = applyUpdate(current, patch, ["access_key.access_key_id"], later());
    if (next.kind.case !== "accessKey") throw new Error("still an access key");
    assert.equal(next.kind.value.accessKeyId, "AKIANEWNEWNEWNEWNEW0");
    assert.equal(next.kind.value.secretAccessKey, SECRET_ACCESS_KEY);
    assert.equal(next.kind.value.sessionToken, SESSION_TOKEN);
  });

  test("a kind field path replaces that field only", () => {
    const current = stored(accessKeyInput());
    const next = applyUpdate(
      current,
      everythingDifferent(),
      ["access_key.secret_access_key"],
      later(),
    );
    if (next.kind.case !== "accessKey") throw new Error("still an access key");
    assert.equal(next.kind.value.secretAccessKey, "patched-secret");
    assert.equal(next.kind.value.accessKeyId, "AKIAIOSFODNN7EXAMPLE");
    assert.equal(next.kind.value.sessionToken, undefined);
  });

  test("a role field path on a role", () => {
    const current = stored(roleInput());
    const patch = edited(roleInput(), (c) => {
      if (c.kind.case === "role") {
        c.kind.value.durationSeconds = 900;
        c.kind.value.roleArn = "arn:aws:iam::999999999999:role/Other";
      }
    });
    const next = applyUpdate(current, patch, ["role.duration_seconds"], later());
    if (next.kind.case !== "role") throw new Error("still a role");
    assert.equal(next.kind.value.durationSeconds, 900);
    assert.equal(next.kind.value.roleArn, "arn:aws:iam::123456789012:role/deploy/Deployer");
  });

  test("updatedAt comes from the clock; createdAt, id and etag are untouched", () => {
    const current = stored(accessKeyInput());
    const ambient = later();
    const next = applyUpdate(current, everythingDifferent(), ["region"], ambient);
    assert.equal(timeOf(next, "updatedAt"), FIXED_NOW.getTime() + HOUR);
    assert.equal(timeOf(next, "createdAt"), FIXED_NOW.getTime());
    assert.equal(next.id, current.id);
    assert.equal(next.namespace, current.namespace);
    assert.equal(next.etag, current.etag);
  });

  test("does not modify current or patch", () => {
    const current = stored(accessKeyInput());
    const patch = everythingDifferent();
    const [c0, p0] = [clone(CredentialSchema, current), clone(CredentialSchema, patch)];
    const next = applyUpdate(
      current,
      patch,
      ["metadata", "allowed_hosts", "allowed_scopes", "access_key"],
      later(),
    );
    next.metadata.extra = "x";
    next.allowedScopes[0]?.actions.push("get_object");
    if (next.kind.case === "accessKey") next.kind.value.secretAccessKey = "mutated";
    assert.ok(equals(CredentialSchema, current, c0), "current unchanged");
    assert.ok(equals(CredentialSchema, patch, p0), "patch unchanged");
  });
});

describe("redact", () => {
  test("clears secret_access_key and session_token, keeps the key id", () => {
    const c = prepareNew(
      edited(accessKeyInput(), (k) => {
        if (k.kind.case === "accessKey") k.kind.value.sessionToken = SESSION_TOKEN;
      }),
      new TestAmbient(),
    );
    const before = clone(CredentialSchema, c);
    const r = redact(c);
    if (r.kind.case !== "accessKey") throw new Error("still an access key");
    assert.equal(r.kind.value.secretAccessKey, "");
    assert.equal(r.kind.value.sessionToken, undefined);
    assert.equal(r.kind.value.accessKeyId, "AKIAIOSFODNN7EXAMPLE");
    assert.ok(equals(CredentialSchema, c, before), "input not modified");
    const expected = clone(CredentialSchema, c);
    expected.kind = {
      case: "accessKey",
      value: create(AccessKeySchema, { accessKeyId: "AKIAIOSFODNN7EXAMPLE" }),
    };
    assert.ok(equals(CredentialSchema, r, expected), "every other field kept");
  });

  test("clears a token", () => {
    const c = prepareNew(tokenInput(), new TestAmbient());
    const r = redact(c);
    if (r.kind.case !== "token") throw new Error("still a token");
    assert.ok(equals(TokenSchema, r.kind.value, create(TokenSchema)));
    if (c.kind.case !== "token") throw new Error("token fixture");
    assert.equal(c.kind.value.token, BEARER_TOKEN, "input keeps its token");
  });

  test("a role has no secret and comes back equal", () => {
    const c = prepareNew(roleInput(), new TestAmbient());
    assert.ok(equals(CredentialSchema, redact(c), c));
  });

  test("no secret survives anywhere in the redacted message", () => {
    const c = prepareNew(
      edited(accessKeyInput(), (k) => {
        if (k.kind.case === "accessKey") k.kind.value.sessionToken = SESSION_TOKEN;
      }),
      new TestAmbient(),
    );
    const text = toJsonString(CredentialSchema, redact(c));
    assert.ok(!text.includes(SECRET_ACCESS_KEY));
    assert.ok(!text.includes(SESSION_TOKEN));
    const token = toJsonString(
      CredentialSchema,
      redact(prepareNew(tokenInput(), new TestAmbient())),
    );
    assert.ok(!token.includes(BEARER_TOKEN));
  });
});
