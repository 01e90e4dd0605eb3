import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Client } from "@connectrpc/connect";
import { Level } from "level";
import type { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { checkStore, type StoreCheck } from "../../src/store/consistency.js";
import { deriveDataKey, Sealer } from "../../src/store/sealing.js";

/**
 * `credbroker repair`'s check, without LevelDB's repair: opens a stopped
 * daemon's database with the master key it wrote and checks every key.
 */
export async function checkDataDir(dataDir: string): Promise<StoreCheck> {
  const master = Buffer.from(
    (await readFile(path.join(dataDir, "master.key"), "utf8")).trim(),
    "base64",
  );
  const db = new Level<string, Buffer>(path.join(dataDir, "db"), { valueEncoding: "buffer" });
  await db.open();
  try {
    return await checkStore(db, new Sealer([deriveDataKey(master)]));
  } finally {
    await db.close();
  }
}

/** Signs an STS GetCallerIdentity with `credential` and checks the access key id it signed with. */
export async function assertSignsWith(
  signing: Client<typeof SigningService>,
  namespace: string,
  credential: string,
  accessKeyId: string,
): Promise<void> {
  const signed = await signing.signRequest({
    namespace,
    credential,
    method: "POST",
    url: "https://sts.us-east-1.amazonaws.com/",
    service: "sts",
    region: "us-east-1",
    payload: { case: "body", value: Buffer.from("Action=GetCallerIdentity&Version=2011-06-15") },
  });
  const authorization = signed.headers.find((h) => h.name.toLowerCase() === "authorization");
  assert.match(authorization?.value ?? "", new RegExp(`Credential=${accessKeyId}/`));
}
