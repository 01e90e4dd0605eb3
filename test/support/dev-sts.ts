/**
 * `npm run dev:sts`: the tests' STS stand-in (sts-server.ts) on
 * 127.0.0.1:9481 (or --port N), for trying credbroker without an AWS account.
 * It accepts any access key, and its sessions carry the key pair of
 * `npm run dev:s3` so that local S3 accepts them. Not AWS; not for real use.
 */

import { portArg, runUntilSignal, startOrExit } from "./dev-main.js";
import { startFakeSts } from "./sts-server.js";
import { DEV_S3_KEY } from "./swift.js";

const COMMAND = "dev:sts";
const ACCOUNT = "000000000000";

const port = portArg(COMMAND, 9481);
const sts = await startOrExit(COMMAND, () =>
  startFakeSts({ port, acceptAnyKeyInAccount: ACCOUNT, sessionKey: DEV_S3_KEY }),
);
console.log(
  [
    `${COMMAND}: a LOCAL STAND-IN for AWS STS (the tests' test/support/sts-server.ts), not AWS.`,
    "  It accepts ANY access key without checking its signature; never point real credentials at it.",
    `  endpoint  ${sts.endpoint}   (credbroker serve --sts-endpoint ${sts.endpoint})`,
    `  sessions  GetSessionToken, GetFederationToken, AssumeRole (any role ARN); each session`,
    `            carries the dev:s3 key ${DEV_S3_KEY.accessKeyId} and a fresh token, and session policies are not enforced`,
    "Ctrl-C stops it.",
  ].join("\n"),
);
runUntilSignal(COMMAND, () => sts.stop());
