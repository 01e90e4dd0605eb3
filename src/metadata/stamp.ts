/** 2026-11-24T10:00:00Z: second precision, as IMDS writes timestamps (truncated, never later). */
export function stamp(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** `stamp(date)`, remembered for the last second asked (a time, never a secret). */
export class StampCache {
  private second = Number.NaN;
  private text = "";

  of(date: Date): string {
    const second = Math.floor(date.getTime() / 1000);
    if (second !== this.second) {
      this.second = second;
      this.text = stamp(date);
    }
    return this.text;
  }
}
