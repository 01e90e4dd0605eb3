/**
 * The two STSes the STS-facing tests run against, behind one small interface:
 * moto (a third-party AWS emulator that verifies SigV4 and IAM policies) and
 * our own stand-in (test/support/sts-server.ts, which verifies SigV4 too and
 * also injects faults). A suite run against both checks credbroker's STS
 * calls against an outside implementation and keeps the stand-in faithful.
 */
import { randomBytes } from "node:crypto";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import type { AwsCredentialIdentity } from "@aws-sdk/types";
import { MOTO_ACCOUNT, type MotoKey, type MotoRole, startMoto } from "./moto.js";
import { startFakeSts } from "./sts-server.js";

export interface StsBackend {
  readonly endpoint: string;
  /** The account every user and role is created in. */
  readonly account: string;
  /** A new IAM user, allowed every sts:* action, with one access key. */
  createUser(name: string): Promise<MotoKey>;
  /** A new role that `trusted` may assume (with the external id, when set); returns its ARN. */
  createRole(name: string, role: MotoRole): Promise<string>;
  stop(): Promise<void>;
}

export interface StsBackendKind {
  readonly name: string;
  start(): Promise<StsBackend>;
}

async function startStandIn(): Promise<StsBackend> {
  const sts = await startFakeSts();
  return {
    endpoint: sts.endpoint,
    account: MOTO_ACCOUNT,
    async createUser(name) {
      const key = {
        accessKeyId: `AKIA${randomBytes(8).toString("hex").toUpperCase()}`,
        secretAccessKey: randomBytes(30).toString("base64"),
        arn: `arn:aws:iam::${MOTO_ACCOUNT}:user/${name}`,
      };
      sts.addKey({ ...key, account: MOTO_ACCOUNT });
      return key;
    },
    async createRole(name, role) {
      const arn = `arn:aws:iam::${MOTO_ACCOUNT}:role/${name}`;
      sts.addRole({ arn, ...role });
      return arn;
    },
    stop: () => sts.stop(),
  };
}

export const STS_BACKENDS: readonly StsBackendKind[] = [
  { name: "moto", start: startMoto },
  { name: "the stand-in STS", start: startStandIn },
];

/** The STS at `endpoint` accepts a GetCallerIdentity signed (by the AWS SDK) with `credentials`: their ARN. */
export async function callerArn(
  endpoint: string,
  credentials: AwsCredentialIdentity,
): Promise<string> {
  const client = new STSClient({ region: "us-east-1", endpoint, credentials, maxAttempts: 1 });
  try {
    return (await client.send(new GetCallerIdentityCommand({}))).Arn ?? "";
  } finally {
    client.destroy();
  }
}
