/** What the daemon started, closed in the reverse order (on stop, or when starting fails). */
export class Closers {
  private readonly closers: (() => Promise<void>)[];

  constructor(...first: (() => Promise<void>)[]) {
    this.closers = first;
  }

  push(close: () => Promise<void>): void {
    this.closers.push(close);
  }

  async closeAll(): Promise<void> {
    for (const close of this.closers.reverse()) await close();
  }
}
