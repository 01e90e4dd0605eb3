/**
 * A one-line progress meter for a terminal: count, rate and, when the total
 * is known, time left. Redrawn in place (carriage return, erase line) at most
 * every `intervalMs`; the first update draws at once.
 */
export class Progress {
  private readonly started: number;
  private drawnAt = Number.NEGATIVE_INFINITY;
  private shown = false;

  constructor(
    private readonly write: (text: string) => void,
    private readonly opts: {
      total?: number | undefined;
      unit: string;
      now?: () => number;
      intervalMs?: number;
    },
  ) {
    this.started = this.now();
  }

  update(done: number): void {
    const now = this.now();
    if (now - this.drawnAt < (this.opts.intervalMs ?? 250)) return;
    this.drawnAt = now;
    this.shown = true;
    this.write(`\r\x1b[K${progressLine(done, (now - this.started) / 1000, this.opts)}`);
  }

  /** Erases the line, so other output starts on a clean line; the next update draws again. */
  clear(): void {
    if (!this.shown) return;
    this.shown = false;
    this.drawnAt = Number.NEGATIVE_INFINITY;
    this.write("\r\x1b[K");
  }

  private now(): number {
    return this.opts.now?.() ?? performance.now();
  }
}

/** "12,000/100,000 lines · 24,310/s · 4s left" */
export function progressLine(
  done: number,
  seconds: number,
  opts: { total?: number | undefined; unit: string },
): string {
  const n = (x: number) => Math.round(x).toLocaleString("en-US");
  const parts = [`${n(done)}${opts.total === undefined ? "" : `/${n(opts.total)}`} ${opts.unit}`];
  // The first half second says little about the rate.
  const rate = seconds >= 0.5 ? done / seconds : 0;
  if (rate > 0) {
    parts.push(`${n(rate)}/s`);
    if (opts.total !== undefined) parts.push(`${duration((opts.total - done) / rate)} left`);
  }
  return parts.join(" · ");
}

function duration(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60
    ? `${m}m${String(s % 60).padStart(2, "0")}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
