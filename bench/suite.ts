/**
 * Every benchmark, one table: figure, credbroker, baseline measured in the
 * same run, ratio, target (✓ met, ✗ missed).
 *
 *   npm run bench                 all of them
 *   npm run bench -- rpc imds     only those named
 *
 * BENCH_SECONDS (default 5) sets each load figure's length, BENCH_LARGE
 * (default 1,000,000) the large store's size.
 */
import os from "node:os";
import { fleet } from "./fleet.js";
import { forward } from "./forward.js";
import { imds } from "./imds.js";
import { million } from "./million.js";
import { rpc } from "./rpc.js";
import { sdk } from "./sdk-signer.js";
import { sign } from "./sign.js";
import { type Bench, printTable, type Row } from "./table.js";

const ALL: Bench[] = [rpc, sign, imds, million, sdk, fleet, forward];

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !ALL.some((b) => b.name === w));
if (unknown.length > 0) {
  console.error(
    `unknown benchmark ${unknown.join(", ")}; there are: ${ALL.map((b) => b.name).join(", ")}`,
  );
  process.exit(2);
}
const rows: Row[] = [];
for (const bench of ALL.filter((b) => wanted.length === 0 || wanted.includes(b.name))) {
  const started = Date.now();
  process.stderr.write(`bench ${bench.name}…\n`);
  rows.push(...(await bench.run()));
  process.stderr.write(`bench ${bench.name}: ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}
console.log(
  `\n${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), ` +
    `${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.arch()}\n`,
);
printTable(rows);
process.exit(rows.some((r) => r.met === false) ? 1 : 0);
