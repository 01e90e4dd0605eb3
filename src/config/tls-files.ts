import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { DomainError } from "../core/errors.js";
import type { TlsFiles } from "./serve-config.js";

/** The PEM contents of the TLS files, checked: what the TLS listener is built from. */
export interface TlsMaterial {
  /** The server certificate, optionally followed by its intermediates. */
  cert: Buffer;
  key: Buffer;
  /** The CA(s) a client certificate must chain to; unset: no client certificates. */
  clientCa: Buffer | undefined;
}

/**
 * Reads the files `serve --tls-cert/--tls-key/--client-ca` name, at startup,
 * and checks each is what it claims (a PEM certificate, an unencrypted PEM
 * private key that belongs to the certificate) so a mistake is one clear
 * error naming the flag and the file. No message ever quotes a file's
 * contents: the key file holds the server's private key.
 */
export async function readTlsFiles(files: TlsFiles): Promise<TlsMaterial> {
  const cert = await read("--tls-cert", files.cert);
  const key = await read("--tls-key", files.key);
  const clientCa =
    files.clientCa === undefined ? undefined : await read("--client-ca", files.clientCa);

  const certificate = parseCertificate("--tls-cert", files.cert, cert);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new DomainError(
      "invalid_argument",
      `--tls-key ${files.key}: not an unencrypted PEM private key`,
      { cause: err },
    );
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new DomainError(
      "invalid_argument",
      `--tls-key ${files.key} is not the private key of the certificate in --tls-cert ${files.cert}`,
    );
  }
  if (clientCa !== undefined && files.clientCa !== undefined) {
    parseCertificate("--client-ca", files.clientCa, clientCa);
  }
  return { cert, key, clientCa };
}

async function read(flag: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new DomainError("invalid_argument", `${flag} ${file}: cannot read the file (${code})`, {
      cause: err,
    });
  }
}

/** The first certificate of a PEM file (a chain's leaf; a bundle's first CA). */
function parseCertificate(flag: string, file: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new DomainError("invalid_argument", `${flag} ${file}: not a PEM certificate`, {
      cause: err,
    });
  }
}
