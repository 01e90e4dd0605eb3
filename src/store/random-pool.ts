import { randomBytes } from "node:crypto";

/**
 * Bytes from the CSPRNG, drawn a block at a time: each randomBytes call costs
 * ~4 µs whatever its size up to a few KiB, which a bulk import would pay
 * twice a record (nonce, etag). Every byte is handed out once. The returned
 * buffer is a view of the block: copy it to keep it beyond its use.
 */
export class RandomPool {
  private block = Buffer.alloc(0);
  private at = 0;

  constructor(private readonly blockBytes = 16 * 1024) {}

  take(n: number): Buffer {
    if (this.at + n > this.block.length) {
      this.block = randomBytes(Math.max(this.blockBytes, n));
      this.at = 0;
    }
    this.at += n;
    return this.block.subarray(this.at - n, this.at);
  }
}
