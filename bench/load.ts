/** A closed-loop load driver: a fixed number of calls in flight, each starting when one ends. */
export interface Load {
  perSecond: number;
  p50: number;
  p99: number;
}

/** Keeps `inFlight` calls going for `seconds` (after a 1 s warm-up); latencies in ms. */
export async function load(
  call: () => Promise<unknown>,
  inFlight: number,
  seconds: number,
): Promise<Load> {
  const run = async (span: number, record: boolean) => {
    const samples: number[] = [];
    const end = performance.now() + span * 1000;
    let done = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          await call();
          if (record) samples.push(performance.now() - t);
          done++;
        }
      }),
    );
    return { samples, done };
  };
  await run(1, false);
  const t = performance.now();
  const { samples, done } = await run(seconds, true);
  const elapsed = (performance.now() - t) / 1000;
  samples.sort((a, b) => a - b);
  const at = (q: number) =>
    samples[Math.min(samples.length - 1, Math.floor(samples.length * q))] ?? 0;
  return { perSecond: done / elapsed, p50: at(0.5), p99: at(0.99) };
}
