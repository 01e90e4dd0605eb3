/**
 * Real certificates for tests, made by the openssl CLI (scripts/test-deps.sh)
 * in a directory the caller owns: P-256 keys, `<name>.key`, `<name>.csr` and
 * `<name>.crt` side by side. Each step is one openssl run; a failing one
 * fails the test with openssl's stderr.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { exec } from "./exec.js";

/** Runs openssl; a non-zero exit fails the test with its stderr. */
export async function openssl(args: string[]): Promise<void> {
  const r = await exec("openssl", args);
  assert.equal(r.code, 0, `openssl ${args.join(" ")}\n${r.stderr}`);
}

/** Fails the test when openssl is not installed. */
export async function assertOpenssl(): Promise<void> {
  const which = await exec("sh", ["-c", "command -v openssl"]);
  assert.equal(which.code, 0, "openssl is needed (scripts/test-deps.sh)");
}

/** A P-256 key and a CSR for `subj` (multi-valued RDNs allowed: "/CN=a+UID=1"). */
export async function keyAndCsr(dir: string, name: string, subj: string): Promise<void> {
  await openssl([
    "req",
    "-new",
    "-utf8",
    "-multivalue-rdn",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    path.join(dir, `${name}.key`),
    "-out",
    path.join(dir, `${name}.csr`),
    "-subj",
    subj,
  ]);
}

/** A self-signed CA, valid two days: `name`.key and `name`.crt. */
export async function selfSignedCa(dir: string, name: string, cn: string): Promise<void> {
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "2",
    "-keyout",
    path.join(dir, `${name}.key`),
    "-out",
    path.join(dir, `${name}.crt`),
    "-subj",
    `/CN=${cn}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
}

/** Signs `name`.csr with CA `ca` into `name`.crt, adding the extensions in `ext`. */
export async function signCsr(
  dir: string,
  name: string,
  ca: string,
  ext: string,
  serial: number,
): Promise<void> {
  const extFile = path.join(dir, `${name}.ext`);
  await writeFile(extFile, ext);
  await openssl([
    "x509",
    "-req",
    "-in",
    path.join(dir, `${name}.csr`),
    "-CA",
    path.join(dir, `${ca}.crt`),
    "-CAkey",
    path.join(dir, `${ca}.key`),
    "-set_serial",
    String(serial),
    "-days",
    "2",
    "-out",
    path.join(dir, `${name}.crt`),
    "-extfile",
    extFile,
  ]);
}
