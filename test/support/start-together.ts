/** A started test server: stopped by stop() or close(). */
type Stoppable = { stop(): Promise<unknown> } | { close(): Promise<unknown> };

/**
 * Starts test servers side by side. When one fails to start, the others that
 * did are stopped before the error is thrown: a `before` that rejects leaves
 * its variables unassigned, so `after` could not stop them, and a running
 * child process would keep the test file alive until CI's timeout.
 */
export async function startTogether<const T extends readonly Promise<Stoppable>[]>(
  starting: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const settled = await Promise.allSettled(starting);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed === undefined) {
    return settled.map((r) => (r as PromiseFulfilledResult<Stoppable>).value) as {
      -readonly [K in keyof T]: Awaited<T[K]>;
    };
  }
  await Promise.allSettled(
    settled.flatMap((r) =>
      r.status !== "fulfilled" ? [] : ["stop" in r.value ? r.value.stop() : r.value.close()],
    ),
  );
  throw failed.reason;
}
