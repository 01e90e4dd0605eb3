/** One line of the benchmark table. */
export interface Row {
  figure: string;
  credbroker: string;
  baseline: string;
  /** credbroker ÷ baseline, as the figure defines it. */
  ratio: number;
  target: string;
  /** Whether the target holds (undefined: recorded, no target). */
  met?: boolean | undefined;
}

export interface Bench {
  /** `npm run bench -- NAME` runs only this one. */
  name: string;
  run(): Promise<Row[]>;
}

export function printTable(rows: Row[]): void {
  console.log("| figure | credbroker | baseline, same run | ratio | target |");
  console.log("|---|---|---|---|---|");
  for (const r of rows) {
    const mark = r.met === undefined ? "" : r.met ? " ✓" : " ✗";
    console.log(
      `| ${r.figure} | ${r.credbroker} | ${r.baseline} | ${Number.isNaN(r.ratio) ? "–" : `${r.ratio.toFixed(2)}×`} | ${r.target}${mark} |`,
    );
  }
}
