import type { Caller } from "../../gen/credbroker/v1/caller_pb.js";

/**
 * Where API callers live. Tokens are never stored: only the SHA-256 of each
 * (hex), as the index that finds a caller from a presented token.
 */
export interface CallerStore {
  /** already_exists when the name is taken. */
  createCaller(caller: Caller, tokenHash: string): Promise<Caller>;
  /** not_found when absent. */
  getCaller(name: string): Promise<Caller>;
  callerByTokenHash(tokenHash: string): Promise<Caller | undefined>;
  /** Every caller, by name. */
  listCallers(): Promise<Caller[]>;
  updateCaller(name: string, change: (current: Caller) => Caller): Promise<Caller>;
  /** The old token stops working in the same write. */
  rotateCallerToken(name: string, tokenHash: string): Promise<void>;
  deleteCaller(name: string): Promise<void>;
}
