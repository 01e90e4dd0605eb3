import assert from "node:assert/strict";
import { clone, create } from "@bufbuild/protobuf";
import {
  AccessKeySchema,
  AccessScopeSchema,
  type Credential,
  CredentialSchema,
  Provider,
  RoleSchema,
  TokenSchema,
} from "../../gen/credbroker/v1/credential_pb.js";
import { type DomainError, type ErrorCode, isDomainError } from "../../src/core/errors.js";
import type { Ambient } from "../../src/core/lifecycle.js";

/** 2030-01-02T03:04:05Z: the fixed "now" of every test ambient. */
export const FIXED_NOW = new Date("2030-01-02T03:04:05.000Z");

/** A fixed clock (movable by hand) and counter-based, UUID-shaped ids. */
export class TestAmbient implements Ambient {
  private counter = 0;
  private at: Date;

  constructor(at: Date = FIXED_NOW) {
    this.at = new Date(at.getTime());
  }

  now(): Date {
    return new Date(this.at.getTime());
  }

  newId(): string {
    this.counter += 1;
    return TestAmbient.idFor(this.counter);
  }

  /** Moves the clock forward by `ms`. */
  advance(ms: number): void {
    this.at = new Date(this.at.getTime() + ms);
  }

  /** The id the n-th call of newId returns (1-based). */
  static idFor(n: number): string {
    return `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
  }
}

export const SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSECRETKEY1";
export const SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN/abc+def=";
export const BEARER_TOKEN = "ghp_EXAMPLEBEARERTOKEN0123456789abcdef";

export interface BaseFields {
  namespace?: string;
  name?: string;
  provider?: Provider;
}

/** An access_key credential as a caller would send it (no id, no timestamps). */
export function accessKeyInput(fields: BaseFields = {}): Credential {
  return create(CredentialSchema, {
    namespace: fields.namespace ?? "team-a",
    name: fields.name ?? "s3-writer",
    provider: fields.provider ?? Provider.AWS,
    region: "us-east-1",
    description: "writes build artifacts",
    principalName: "arn:aws:iam::123456789012:user/ci",
    metadata: { owner: "platform", env: "prod" },
    allowedHosts: ["*.s3.amazonaws.com", "s3.amazonaws.com"],
    allowedScopes: [
      create(AccessScopeSchema, {
        bucket: "artifacts",
        prefixes: ["builds/"],
        actions: ["get_object", "put_object"],
      }),
    ],
    kind: {
      case: "accessKey",
      value: create(AccessKeySchema, {
        accessKeyId: "AKIAIOSFODNN7EXAMPLE",
        secretAccessKey: SECRET_ACCESS_KEY,
      }),
    },
  });
}

/** A role credential with every field set explicitly (valid without prepareNew). */
export function roleInput(fields: BaseFields & { source?: string } = {}): Credential {
  return create(CredentialSchema, {
    namespace: fields.namespace ?? "team-a",
    name: fields.name ?? "deployer",
    provider: fields.provider ?? Provider.AWS,
    region: "eu-west-1",
    kind: {
      case: "role",
      value: create(RoleSchema, {
        roleArn: "arn:aws:iam::123456789012:role/deploy/Deployer",
        externalId: "ext-0123456789",
        sessionName: "credbroker-session",
        durationSeconds: 3600,
        sourceCredential: fields.source ?? "s3-writer",
      }),
    },
  });
}

/** A generic bearer-token credential. */
export function tokenInput(fields: BaseFields = {}): Credential {
  return create(CredentialSchema, {
    namespace: fields.namespace ?? "team-a",
    name: fields.name ?? "github",
    provider: fields.provider ?? Provider.GENERIC,
    allowedHosts: ["api.github.com"],
    kind: { case: "token", value: create(TokenSchema, { token: BEARER_TOKEN }) },
  });
}

/** A copy of `c` changed by `mutate`: table rows describe one change each. */
export function edited(c: Credential, mutate: (c: Credential) => void): Credential {
  const copy = clone(CredentialSchema, c);
  mutate(copy);
  return copy;
}

/**
 * An assert.throws / assert.rejects predicate: a DomainError with `code`
 * whose message contains every fragment.
 */
export function domainError(
  code: ErrorCode,
  ...fragments: string[]
): (err: unknown) => err is DomainError {
  return (err: unknown): err is DomainError => {
    assert.ok(isDomainError(err), `expected a DomainError, got ${String(err)}`);
    assert.equal(err.code, code, `code of "${err.message}"`);
    for (const f of fragments) {
      assert.ok(err.message.includes(f), `message "${err.message}" should mention "${f}"`);
    }
    return true;
  };
}
