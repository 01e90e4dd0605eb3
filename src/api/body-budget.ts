import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The request body bytes every request of a listener holds together, capped
 * (threat: many slow or unfinished uploads, each under the message limit,
 * that together exhaust memory). Each request takes a `BodyHold` and gives
 * its bytes back when it closes.
 */
export class BodyBudget {
  private held = 0;

  constructor(private readonly maxBytes: number) {}

  /** A request's share: add to it as its body arrives, release it when the request closes. */
  hold(): BodyHold {
    let mine = 0;
    return {
      add: (bytes) => {
        if (this.held + bytes > this.maxBytes) return false;
        this.held += bytes;
        mine += bytes;
        return true;
      },
      giveBack: (bytes) => {
        const back = Math.min(bytes, mine);
        this.held -= back;
        mine -= back;
      },
      release: () => {
        this.held -= mine;
        mine = 0;
      },
    };
  }
}

export interface BodyHold {
  /** Counts `bytes` more, or returns false (counting nothing) when the budget has no room. */
  add(bytes: number): boolean;
  /** Returns `bytes` of what was counted (a client stream's message, once read). */
  giveBack(bytes: number): void;
  release(): void;
}

/** What a request over the budget is answered, on either path. */
export function bodyBudgetExhausted(): ConnectError {
  return new ConnectError(
    "the daemon holds too many request bodies at once; retry later",
    Code.ResourceExhausted,
  );
}
