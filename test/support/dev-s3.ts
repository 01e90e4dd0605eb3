/**
 * `npm run dev:s3`: the tests' local S3 (swift.ts: OpenStack Swift with
 * s3api, from Debian's python3-swift) with its endpoint on 127.0.0.1:9480
 * (or --port N), in the foreground until Ctrl-C, which stops every Swift
 * process and removes its temp dir (the data goes with it).
 */
import { portArg, runUntilSignal, startOrExit } from "./dev-main.js";
import { startSwift } from "./swift.js";

const COMMAND = "dev:s3";

const proxyPort = portArg(COMMAND, 9480);
const swift = await startOrExit(COMMAND, () => startSwift({ proxyPort }));
console.log(
  [
    `${COMMAND}: a local S3 for trying credbroker (OpenStack Swift + s3api, as in the tests); its data is a temp dir, gone on exit.`,
    `  endpoint    ${swift.endpoint}   (path-style, SigV4)`,
    `  access key  ${swift.accessKeyId}`,
    `  secret      ${swift.secretAccessKey}   (a fixed test password, known to everyone)`,
    `  region      ${swift.region}`,
    "Ctrl-C stops it.",
  ].join("\n"),
);
runUntilSignal(COMMAND, () => swift.stop());
