import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type AccessKey,
  AccessScopeSchema,
  type Credential,
  type Role,
  type Token,
  TokenPlacement,
} from "../../gen/credbroker/v1/credential_pb.js";
import { type Check, Severity } from "../../gen/credbroker/v1/credential_service_pb.js";
import { fieldChecks } from "../../src/core/field-checks.js";
import { validateCredential } from "../../src/core/validate.js";
import { verifyStructure } from "../../src/core/verify.js";
import {
  accessKeyInput,
  domainError,
  edited,
  FIXED_NOW,
  roleInput,
  SECRET_ACCESS_KEY,
  tokenInput,
} from "./fixtures.js";

function ak(c: Credential): AccessKey {
  if (c.kind.case !== "accessKey") throw new Error("fixture is not an access_key");
  return c.kind.value;
}

function role(c: Credential): Role {
  if (c.kind.case !== "role") throw new Error("fixture is not a role");
  return c.kind.value;
}

function setToken(c: Credential, token: string): void {
  if (c.kind.case !== "token") throw new Error("fixture is not a token");
  c.kind.value.token = token;
}

function placed(
  fields: Partial<Pick<Token, "placement" | "headerName" | "prefix" | "queryName" | "username">>,
): Credential {
  return edited(tokenInput(), (c) => {
    if (c.kind.case !== "token") throw new Error("fixture is not a token");
    Object.assign(c.kind.value, fields);
  });
}

const x = (n: number): string => "x".repeat(n);
const scope = (bucket: string, actions: string[]) =>
  create(AccessScopeSchema, { bucket, prefixes: [], actions });
const entries = (n: number): Record<string, string> =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));

type Row = [label: string, credential: Credential];

const accepted: Row[] = [
  ["a good access_key", accessKeyInput()],
  ["a good role", roleInput()],
  ["a good token", tokenInput()],
  ["a bearer token", placed({ placement: TokenPlacement.BEARER })],
  [
    "a token in a header, with a prefix",
    placed({ placement: TokenPlacement.HEADER, headerName: "X-Api-Key", prefix: "Token " }),
  ],
  [
    "a token in Authorization with its own scheme",
    placed({ placement: TokenPlacement.HEADER, headerName: "Authorization", prefix: "token " }),
  ],
  ["a token in the query", placed({ placement: TokenPlacement.QUERY, queryName: "api_key" })],
  ["a Basic token", placed({ placement: TokenPlacement.BASIC, username: "ci-bot" })],
  ["a Basic token with no user name", placed({ placement: TokenPlacement.BASIC })],
  [
    "http:// and IP-literal hosts",
    edited(tokenInput(), (c) => {
      c.allowedHosts = ["http://api.internal", "10.0.0.5", "[fd00::1]", "HTTP://*.example.com"];
    }),
  ],
  [
    "an access_key with a session token",
    edited(accessKeyInput(), (c) => {
      ak(c).sessionToken = "FwoGZXIvYXdz";
    }),
  ],
  [
    "the workspace namespace (empty)",
    edited(accessKeyInput(), (c) => {
      c.namespace = "";
    }),
  ],
  [
    "a 64-char namespace",
    edited(accessKeyInput(), (c) => {
      c.namespace = x(64);
    }),
  ],
  [
    "a 64-char name",
    edited(accessKeyInput(), (c) => {
      c.name = x(64);
    }),
  ],
  [
    "a name of every allowed character",
    edited(accessKeyInput(), (c) => {
      c.name = "Az09._-";
    }),
  ],
  [
    "access_key_id test:tester (S3-compatible)",
    edited(accessKeyInput(), (c) => {
      ak(c).accessKeyId = "test:tester";
    }),
  ],
  [
    "a 128-char access_key_id",
    edited(accessKeyInput(), (c) => {
      ak(c).accessKeyId = x(128);
    }),
  ],
  [
    "role_arn partition aws-cn",
    edited(roleInput(), (c) => {
      role(c).roleArn = "arn:aws-cn:iam::123456789012:role/Reader";
    }),
  ],
  [
    "role_arn partition aws-us-gov",
    edited(roleInput(), (c) => {
      role(c).roleArn = "arn:aws-us-gov:iam::123456789012:role/Reader";
    }),
  ],
  [
    "role_arn with a path",
    edited(roleInput(), (c) => {
      role(c).roleArn = "arn:aws:iam::123456789012:role/a/b/c/Name+=,.@-_";
    }),
  ],
  [
    "external_id of 2 chars",
    edited(roleInput(), (c) => {
      role(c).externalId = "ab";
    }),
  ],
  [
    "external_id of 1224 chars",
    edited(roleInput(), (c) => {
      role(c).externalId = x(1224);
    }),
  ],
  [
    "duration_seconds 900",
    edited(roleInput(), (c) => {
      role(c).durationSeconds = 900;
    }),
  ],
  [
    "duration_seconds 43200",
    edited(roleInput(), (c) => {
      role(c).durationSeconds = 43200;
    }),
  ],
  [
    "no session_name",
    edited(roleInput(), (c) => {
      role(c).sessionName = undefined;
    }),
  ],
  [
    "session_name of 64 chars",
    edited(roleInput(), (c) => {
      role(c).sessionName = x(64);
    }),
  ],
  [
    "host *.example.com without scopes",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["*.example.com"];
      c.allowedScopes = [];
    }),
  ],
  [
    "AWS wildcards with scopes",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["*.amazonaws.com", "*.s3.eu-west-1.amazonaws.com", "*.amazonaws.com.cn"];
    }),
  ],
  [
    "exact non-AWS hosts with scopes",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["minio.example.com", "bucket.minio.example.com", "127.0.0.1"];
    }),
  ],
  [
    "host s3.amazonaws.com",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["s3.amazonaws.com"];
    }),
  ],
  [
    "host [::1]",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["[::1]"];
    }),
  ],
  [
    "100 hosts",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = Array.from({ length: 100 }, (_, i) => `h${i}.example.com`);
    }),
  ],
  [
    "no hosts and no scopes",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = [];
      c.allowedScopes = [];
    }),
  ],
  [
    "a scope with every action",
    edited(accessKeyInput(), (c) => {
      c.allowedScopes = [
        scope("b", [
          "get_object",
          "head_object",
          "put_object",
          "delete_object",
          "list_bucket",
          "create_multipart_upload",
          "upload_part",
          "complete_multipart_upload",
          "abort_multipart_upload",
        ]),
      ];
    }),
  ],
  [
    "64 metadata entries",
    edited(accessKeyInput(), (c) => {
      c.metadata = entries(64);
    }),
  ],
  [
    "metadata key of 128 and value of 1024",
    edited(accessKeyInput(), (c) => {
      c.metadata = { [x(128)]: x(1024), e: "" };
    }),
  ],
  [
    "empty region",
    edited(accessKeyInput(), (c) => {
      c.region = "";
    }),
  ],
  [
    "description of 1024",
    edited(accessKeyInput(), (c) => {
      c.description = x(1024);
    }),
  ],
];

/** [label, credential, the field path the message must start with]. */
const rejected: [label: string, credential: Credential, field: string][] = [
  [
    "empty name",
    edited(accessKeyInput(), (c) => {
      c.name = "";
    }),
    "name",
  ],
  [
    "65-char name",
    edited(accessKeyInput(), (c) => {
      c.name = x(65);
    }),
    "name",
  ],
  [
    "name with '/'",
    edited(accessKeyInput(), (c) => {
      c.name = "a/b";
    }),
    "name",
  ],
  [
    "unicode name",
    edited(accessKeyInput(), (c) => {
      c.name = "naïve";
    }),
    "name",
  ],
  [
    "65-char namespace",
    edited(accessKeyInput(), (c) => {
      c.namespace = x(65);
    }),
    "namespace",
  ],
  [
    "namespace with '/'",
    edited(accessKeyInput(), (c) => {
      c.namespace = "team/a";
    }),
    "namespace",
  ],
  [
    "unicode namespace",
    edited(accessKeyInput(), (c) => {
      c.namespace = "équipe";
    }),
    "namespace",
  ],
  [
    "no kind",
    edited(accessKeyInput(), (c) => {
      c.kind = { case: undefined };
    }),
    "kind",
  ],
  [
    "empty access_key_id",
    edited(accessKeyInput(), (c) => {
      ak(c).accessKeyId = "";
    }),
    "access_key.access_key_id",
  ],
  [
    "access_key_id with a space",
    edited(accessKeyInput(), (c) => {
      ak(c).accessKeyId = "AKIA IOSFODNN7EXAMPLE";
    }),
    "access_key.access_key_id",
  ],
  [
    "129-char access_key_id",
    edited(accessKeyInput(), (c) => {
      ak(c).accessKeyId = x(129);
    }),
    "access_key.access_key_id",
  ],
  [
    "empty secret_access_key",
    edited(accessKeyInput(), (c) => {
      ak(c).secretAccessKey = "";
    }),
    "access_key.secret_access_key",
  ],
  [
    "1025-char secret_access_key",
    edited(accessKeyInput(), (c) => {
      ak(c).secretAccessKey = x(1025);
    }),
    "access_key.secret_access_key",
  ],
  [
    "empty session_token when set",
    edited(accessKeyInput(), (c) => {
      ak(c).sessionToken = "";
    }),
    "access_key.session_token",
  ],
  [
    "8193-char session_token",
    edited(accessKeyInput(), (c) => {
      ak(c).sessionToken = x(8193);
    }),
    "access_key.session_token",
  ],
  [
    "empty token",
    edited(tokenInput(), (c) => {
      setToken(c, "");
    }),
    "token.token",
  ],
  ["an unknown placement", placed({ placement: 9 as TokenPlacement }), "token.placement"],
  [
    "a header placement without header_name",
    placed({ placement: TokenPlacement.HEADER }),
    "token.header_name",
  ],
  [
    "a header placement on Host",
    placed({ placement: TokenPlacement.HEADER, headerName: "host" }),
    "token.header_name",
  ],
  [
    "a header placement on a hop-by-hop header",
    placed({ placement: TokenPlacement.HEADER, headerName: "Transfer-Encoding" }),
    "token.header_name",
  ],
  [
    "a header name with a space",
    placed({ placement: TokenPlacement.HEADER, headerName: "X Key" }),
    "token.header_name",
  ],
  [
    "a prefix with a line break",
    placed({ placement: TokenPlacement.HEADER, headerName: "X-Key", prefix: "a\r\nX-Evil: 1" }),
    "token.prefix",
  ],
  [
    "a query placement without query_name",
    placed({ placement: TokenPlacement.QUERY }),
    "token.query_name",
  ],
  [
    "a query name with '&'",
    placed({ placement: TokenPlacement.QUERY, queryName: "a&b" }),
    "token.query_name",
  ],
  [
    "a Basic user name with ':'",
    placed({ placement: TokenPlacement.BASIC, username: "a:b" }),
    "token.username",
  ],
  [
    "header_name on a bearer token",
    placed({ placement: TokenPlacement.BEARER, headerName: "X-Key" }),
    "token.header_name",
  ],
  [
    "query_name on a header token",
    placed({ placement: TokenPlacement.HEADER, headerName: "X-Key", queryName: "k" }),
    "token.query_name",
  ],
  [
    "8193-char token",
    edited(tokenInput(), (c) => {
      setToken(c, x(8193));
    }),
    "token.token",
  ],
  [
    "role_arn partition aws-xx",
    edited(roleInput(), (c) => {
      role(c).roleArn = "arn:aws-xx:iam::123456789012:role/Reader";
    }),
    "role.role_arn",
  ],
  [
    "role_arn with 11 digits",
    edited(roleInput(), (c) => {
      role(c).roleArn = "arn:aws:iam::12345678901:role/Reader";
    }),
    "role.role_arn",
  ],
  [
    "role_arn of a user",
    edited(roleInput(), (c) => {
      role(c).roleArn = "arn:aws:iam::123456789012:user/Reader";
    }),
    "role.role_arn",
  ],
  [
    "empty role_arn",
    edited(roleInput(), (c) => {
      role(c).roleArn = "";
    }),
    "role.role_arn",
  ],
  [
    "external_id of 1 char",
    edited(roleInput(), (c) => {
      role(c).externalId = "x";
    }),
    "role.external_id",
  ],
  [
    "external_id of 1225 chars",
    edited(roleInput(), (c) => {
      role(c).externalId = x(1225);
    }),
    "role.external_id",
  ],
  [
    "duration_seconds 899",
    edited(roleInput(), (c) => {
      role(c).durationSeconds = 899;
    }),
    "role.duration_seconds",
  ],
  [
    "duration_seconds 43201",
    edited(roleInput(), (c) => {
      role(c).durationSeconds = 43201;
    }),
    "role.duration_seconds",
  ],
  [
    "duration_seconds 0 (unprepared)",
    edited(roleInput(), (c) => {
      role(c).durationSeconds = 0;
    }),
    "role.duration_seconds",
  ],
  [
    "session_name of 1 char",
    edited(roleInput(), (c) => {
      role(c).sessionName = "s";
    }),
    "role.session_name",
  ],
  [
    "session_name of 65 chars",
    edited(roleInput(), (c) => {
      role(c).sessionName = x(65);
    }),
    "role.session_name",
  ],
  [
    "session_name with a space",
    edited(roleInput(), (c) => {
      role(c).sessionName = "my session";
    }),
    "role.session_name",
  ],
  [
    "empty source_credential",
    edited(roleInput(), (c) => {
      role(c).sourceCredential = "";
    }),
    "role.source_credential",
  ],
  [
    "source_credential with '/'",
    edited(roleInput(), (c) => {
      role(c).sourceCredential = "other-ns/key";
    }),
    "role.source_credential",
  ],
  [
    "upper-case region",
    edited(accessKeyInput(), (c) => {
      c.region = "US-EAST-1";
    }),
    "region",
  ],
  [
    "description of 1025",
    edited(accessKeyInput(), (c) => {
      c.description = x(1025);
    }),
    "description",
  ],
  [
    "principal_name of 257",
    edited(accessKeyInput(), (c) => {
      c.principalName = x(257);
    }),
    "principal_name",
  ],
  [
    "host with an https:// scheme (only http:// is a prefix allowed_hosts reads)",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["https://x"];
    }),
    "allowed_hosts",
  ],
  [
    "host with a port",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["x.com:443"];
    }),
    "allowed_hosts",
  ],
  [
    "host *",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["*"];
    }),
    "allowed_hosts",
  ],
  [
    "a non-AWS wildcard host with scopes (the bucket may be in the host name)",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["s3.amazonaws.com", "*.minio.example.com"];
    }),
    "allowed_hosts",
  ],
  [
    "a wildcard that only looks like AWS, with scopes",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["*.evilamazonaws.com"];
    }),
    "allowed_hosts",
  ],
  [
    "101 hosts",
    edited(accessKeyInput(), (c) => {
      c.allowedHosts = Array.from({ length: 101 }, (_, i) => `h${i}.example.com`);
    }),
    "allowed_hosts",
  ],
  [
    "scope with an unknown action",
    edited(accessKeyInput(), (c) => {
      c.allowedScopes = [scope("b", ["get_object", "s3:GetObject"])];
    }),
    "allowed_scopes.actions",
  ],
  [
    "scope with no actions",
    edited(accessKeyInput(), (c) => {
      c.allowedScopes = [scope("b", [])];
    }),
    "allowed_scopes.actions",
  ],
  [
    "scope without a bucket",
    edited(accessKeyInput(), (c) => {
      c.allowedScopes = [scope("", ["get_object"])];
    }),
    "allowed_scopes.bucket",
  ],
  [
    "scope prefix of 1025",
    edited(accessKeyInput(), (c) => {
      c.allowedScopes = [
        create(AccessScopeSchema, { bucket: "b", prefixes: [x(1025)], actions: ["get_object"] }),
      ];
    }),
    "allowed_scopes.prefixes",
  ],
  [
    "101 scopes",
    edited(accessKeyInput(), (c) => {
      c.allowedScopes = Array.from({ length: 101 }, () => scope("b", ["get_object"]));
    }),
    "allowed_scopes",
  ],
  [
    "65 metadata entries",
    edited(accessKeyInput(), (c) => {
      c.metadata = entries(65);
    }),
    "metadata",
  ],
  [
    "empty metadata key",
    edited(accessKeyInput(), (c) => {
      c.metadata = { "": "v" };
    }),
    "metadata",
  ],
  [
    "metadata key of 129",
    edited(accessKeyInput(), (c) => {
      c.metadata = { [x(129)]: "v" };
    }),
    "metadata",
  ],
  [
    "metadata value of 1025",
    edited(accessKeyInput(), (c) => {
      c.metadata = { k: x(1025) };
    }),
    "metadata",
  ],
];

describe("validateCredential", () => {
  for (const [label, credential] of accepted) {
    test(`accepts ${label}`, () => {
      assert.doesNotThrow(() => validateCredential(credential));
    });
  }

  for (const [label, credential, field] of rejected) {
    test(`rejects ${label} naming ${field}`, () => {
      assert.throws(
        () => validateCredential(credential),
        (err: unknown) => {
          domainError("invalid_argument")(err);
          const messages = (err as Error).message.split("; ");
          assert.equal(messages.length, 1, `exactly one failure: ${(err as Error).message}`);
          assert.ok(
            messages[0]?.startsWith(`${field}:`),
            `"${(err as Error).message}" should start with "${field}:"`,
          );
          return true;
        },
      );
    });
  }

  test("names every malformed field at once", () => {
    const bad = edited(accessKeyInput(), (c) => {
      c.name = "";
      c.region = "UPPER";
      c.allowedHosts = ["x.com:443"];
    });
    assert.throws(
      () => validateCredential(bad),
      domainError("invalid_argument", "name:", "region:", "allowed_hosts:"),
    );
  });

  test("never quotes a secret in a message", () => {
    const secret = `${SECRET_ACCESS_KEY} with spaces`;
    const bad = edited(accessKeyInput(), (c) => {
      ak(c).secretAccessKey = secret;
      ak(c).sessionToken = "session token with spaces";
    });
    assert.throws(
      () => validateCredential(bad),
      (err: unknown) => {
        domainError("invalid_argument", "access_key.secret_access_key")(err);
        const message = (err as Error).message;
        assert.ok(!message.includes(SECRET_ACCESS_KEY), message);
        assert.ok(!message.includes("session token with spaces"), message);
        return true;
      },
    );
  });

  test("points at the bad host by index, never quoting it", () => {
    const bad = edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["ok.example.com", "MARKER:s3cret@x.com"];
    });
    assert.throws(
      () => validateCredential(bad),
      (err: unknown) => {
        domainError("invalid_argument", "allowed_hosts[1]")(err);
        assert.ok(!(err as Error).message.includes("MARKER"), (err as Error).message);
        return true;
      },
    );
  });

  test("points at a scope with an unknown action by index, never quoting the action", () => {
    const bad = edited(accessKeyInput(), (c) => {
      c.allowedScopes = [scope("b", ["get_object"]), scope("b", ["MARKERs3cret"])];
    });
    assert.throws(
      () => validateCredential(bad),
      (err: unknown) => {
        domainError("invalid_argument", "allowed_scopes[1]")(err);
        assert.ok(!(err as Error).message.includes("MARKER"), (err as Error).message);
        return true;
      },
    );
  });

  test("names the wildcard rule and the offending entry", () => {
    const bad = edited(accessKeyInput(), (c) => {
      c.allowedHosts = ["s3.amazonaws.com", "*.minio.example.com"];
    });
    assert.throws(
      () => validateCredential(bad),
      domainError(
        "invalid_argument",
        "allowed_hosts",
        "wildcard",
        "allowed_scopes",
        "allowed_hosts[1]",
      ),
    );
  });
});

function find(checks: Check[], name: string): Check {
  const found = checks.find((k) => k.check === name);
  assert.ok(found, `check ${name} present in ${checks.map((k) => k.check).join(", ")}`);
  return found;
}

describe("fieldChecks", () => {
  test("is pure: the same credential gives the same checks in the same order", () => {
    const a = fieldChecks(accessKeyInput());
    const b = fieldChecks(accessKeyInput());
    assert.deepEqual(
      a.map((k) => [k.check, k.ok, k.severity, k.message]),
      b.map((k) => [k.check, k.ok, k.severity, k.message]),
    );
    assert.ok(a.every((k) => k.ok));
  });

  test("each check message starts with its field path", () => {
    for (const c of [accessKeyInput(), roleInput(), tokenInput()]) {
      for (const k of fieldChecks(c)) {
        const field = k.check.split(".").slice(0, -1).join(".") || k.check;
        assert.ok(k.message.startsWith(field), `${k.check}: ${k.message}`);
      }
    }
  });
});

describe("verifyStructure", () => {
  const ctx = { now: FIXED_NOW };
  const source = accessKeyInput();

  test("an AWS-shaped access key id passes the shape check", () => {
    const v = verifyStructure(accessKeyInput(), ctx);
    assert.equal(v.valid, true);
    assert.equal(find(v.checks, "access_key.access_key_id.aws_shape").ok, true);
  });

  test("a key id that is not AWS-shaped is only a warning", () => {
    const c = edited(accessKeyInput(), (k) => {
      ak(k).accessKeyId = "test:tester";
    });
    const v = verifyStructure(c, ctx);
    const shape = find(v.checks, "access_key.access_key_id.aws_shape");
    assert.equal(shape.ok, false);
    assert.equal(shape.severity, Severity.WARNING);
    assert.equal(v.valid, true);
  });

  test("a malformed key id fails format, and the shape warning is not added on top", () => {
    const c = edited(accessKeyInput(), (k) => {
      ak(k).accessKeyId = "has space";
    });
    const v = verifyStructure(c, ctx);
    assert.equal(v.valid, false);
    assert.equal(find(v.checks, "access_key.access_key_id.format").ok, false);
    assert.equal(find(v.checks, "access_key.access_key_id.aws_shape").ok, true);
  });

  test("an ASIA key without a session token is a warning", () => {
    const c = edited(accessKeyInput(), (k) => {
      ak(k).accessKeyId = "ASIAIOSFODNN7EXAMPLE";
    });
    const v = verifyStructure(c, ctx);
    const present = find(v.checks, "access_key.session_token.present");
    assert.equal(present.ok, false);
    assert.equal(present.severity, Severity.WARNING);
    assert.equal(v.valid, true);
  });

  test("an ASIA key with its session token passes", () => {
    const c = edited(accessKeyInput(), (k) => {
      ak(k).accessKeyId = "ASIAIOSFODNN7EXAMPLE";
      ak(k).sessionToken = "FwoGZXIvYXdz";
    });
    const v = verifyStructure(c, ctx);
    assert.equal(find(v.checks, "access_key.session_token.present").ok, true);
    assert.equal(v.valid, true);
  });

  for (const [label, offsetMs, ok] of [
    ["an expired credential", -1000, false],
    ["a credential expiring exactly now", 0, false],
    ["a credential expiring later", 1000, true],
  ] as const) {
    test(`${label}: expires_at.future ok=${ok}`, () => {
      const c = edited(accessKeyInput(), (k) => {
        k.expiresAt = timestampFromDate(new Date(FIXED_NOW.getTime() + offsetMs));
      });
      const v = verifyStructure(c, ctx);
      const expiry = find(v.checks, "expires_at.future");
      assert.equal(expiry.ok, ok);
      assert.equal(expiry.severity, Severity.ERROR);
      assert.equal(v.valid, ok);
    });
  }

  test("no expires_at: no expiry check", () => {
    const v = verifyStructure(accessKeyInput(), ctx);
    assert.equal(
      v.checks.find((k) => k.check === "expires_at.future"),
      undefined,
    );
  });

  test("a disabled credential is a warning, still valid", () => {
    const c = edited(accessKeyInput(), (k) => {
      k.enabled = false;
    });
    const v = verifyStructure(c, ctx);
    const enabled = find(v.checks, "enabled");
    assert.equal(enabled.ok, false);
    assert.equal(enabled.severity, Severity.WARNING);
    assert.equal(v.valid, true);
  });

  test("enabled unset or true passes", () => {
    for (const enabled of [undefined, true]) {
      const c = edited(accessKeyInput(), (k) => {
        k.enabled = enabled;
      });
      assert.equal(find(verifyStructure(c, ctx).checks, "enabled").ok, true);
    }
  });

  test("a role whose source is missing is an error naming the source", () => {
    const v = verifyStructure(roleInput({ source: "gone" }), { now: FIXED_NOW });
    const usable = find(v.checks, "role.source_credential.usable");
    assert.equal(usable.ok, false);
    assert.equal(usable.severity, Severity.ERROR);
    assert.ok(usable.message.includes("team-a/gone"), usable.message);
    assert.equal(v.valid, false);
  });

  test("a role whose source is not an access key is an error", () => {
    const v = verifyStructure(roleInput({ source: "github" }), {
      now: FIXED_NOW,
      source: tokenInput(),
    });
    const usable = find(v.checks, "role.source_credential.usable");
    assert.equal(usable.ok, false);
    assert.ok(usable.message.includes("not an access_key"), usable.message);
    assert.equal(v.valid, false);
  });

  test("a role whose source is an access key is valid", () => {
    const v = verifyStructure(roleInput(), { now: FIXED_NOW, source });
    assert.equal(find(v.checks, "role.source_credential.usable").ok, true);
    assert.equal(v.valid, true);
  });

  test("non-role credentials get no source check", () => {
    for (const c of [accessKeyInput(), tokenInput()]) {
      assert.equal(
        verifyStructure(c, ctx).checks.find((k) => k.check === "role.source_credential.usable"),
        undefined,
      );
    }
  });

  test("a malformed field makes it invalid", () => {
    const c = edited(accessKeyInput(), (k) => {
      k.allowedHosts = ["*"];
    });
    const v = verifyStructure(c, ctx);
    assert.equal(v.valid, false);
    assert.equal(find(v.checks, "allowed_hosts.format").ok, false);
  });
});
