import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import { DomainError } from "../core/errors.js";
import { ConfigInvalid } from "./problems.js";
import type { TlsFiles } from "./serve-config.js";
import { flagAndPath, unreadable } from "./shown-path.js";

/** The PEM contents of the TLS files, checked: what the TLS listener is built from. */
export interface TlsMaterial {
  /** The server certificate, optionally followed by its intermediates. */
  cert: Buffer;
  key: Buffer;
  /** The CA(s) a client certificate must chain to; unset: no client certificates. */
  clientCa: Buffer | undefined;
}

/** readTlsFiles, every problem at once: a DomainError each, naming the flag (and the file, when it exists). */
export async function checkTlsFiles(
  files: TlsFiles,
): Promise<{ material: TlsMaterial | undefined; problems: DomainError[] }> {
  const problems: DomainError[] = [];
  const fail = (flag: string, file: string, what: string) => {
    problems.push(new DomainError("invalid_argument", `${flagAndPath(flag, file)}: ${what}`));
    return undefined;
  };
  const read = (flag: string, file: string) =>
    readFile(file).catch((err: NodeJS.ErrnoException) => fail(flag, file, unreadable(err)));
  const cert = await read("--tls-cert", files.cert);
  const key = await read("--tls-key", files.key);
  const clientCa =
    files.clientCa === undefined ? undefined : await read("--client-ca", files.clientCa);

  const certificate =
    cert === undefined
      ? undefined
      : parseCertificate(cert, (w) => fail("--tls-cert", files.cert, w));
  const privateKey =
    key === undefined ? undefined : parseKey(key, (w) => fail("--tls-key", files.key, w));
  if (certificate !== undefined && privateKey !== undefined) {
    if (!certificate.checkPrivateKey(privateKey)) {
      problems.push(
        new DomainError(
          "invalid_argument",
          `--tls-key ${files.key} is not the private key of the certificate in --tls-cert ${files.cert}`,
        ),
      );
    } else {
      // What the listener will do with them; OpenSSL's own words are not shown.
      try {
        createSecureContext({ cert, key });
      } catch (err) {
        fail("--tls-cert", files.cert, `refused by TLS: ${tlsReason(err)}`);
      }
    }
  }
  if (clientCa !== undefined && files.clientCa !== undefined) {
    const file = files.clientCa;
    if (parseCertificate(clientCa, (w) => fail("--client-ca", file, w)) !== undefined) {
      try {
        createSecureContext({ ca: clientCa });
      } catch {
        fail("--client-ca", file, "not a PEM bundle of CA certificates");
      }
    }
  }
  const material =
    problems.length === 0 && cert !== undefined && key !== undefined
      ? { cert, key, clientCa }
      : undefined;
  return { material, problems };
}

/**
 * Reads the files `serve --tls-cert/--tls-key/--client-ca` name, at startup,
 * and checks each is what it claims (a PEM certificate, an unencrypted PEM
 * private key that belongs to the certificate) so a mistake is one clear
 * error naming the flag and the file (a path that names nothing is not
 * repeated: it may be a secret typed in the wrong place). No message ever quotes a file's
 * contents (the key file holds the server's private key), nor OpenSSL's text.
 */
export async function readTlsFiles(files: TlsFiles): Promise<TlsMaterial> {
  const { material, problems } = await checkTlsFiles(files);
  if (material === undefined)
    throw new ConfigInvalid(problems.map((p) => ({ message: p.message })));
  return material;
}

const PEM_LABEL = /-----BEGIN ([A-Z0-9 ]+)-----/;

/** The first certificate of a PEM file (a chain's leaf; a bundle's first CA). */
function parseCertificate(
  pem: Buffer,
  fail: (what: string) => undefined,
): X509Certificate | undefined {
  const label = PEM_LABEL.exec(pem.toString("latin1"))?.[1];
  if (label?.endsWith("PRIVATE KEY")) return fail("not a PEM certificate (it holds a private key)");
  try {
    return new X509Certificate(pem);
  } catch {
    return fail("not a PEM certificate");
  }
}

function parseKey(pem: Buffer, fail: (what: string) => undefined): KeyObject | undefined {
  const text = pem.toString("latin1");
  const label = PEM_LABEL.exec(text)?.[1];
  if (label === "CERTIFICATE") return fail("not a PEM private key (it holds a certificate)");
  if (label === "ENCRYPTED PRIVATE KEY" || /Proc-Type:\s*4,ENCRYPTED/.test(text)) {
    return fail("an encrypted PEM private key; serve needs it unencrypted");
  }
  try {
    return createPrivateKey({ key: pem, format: "pem" });
  } catch {
    return fail("not a PEM private key");
  }
}

/** OpenSSL's refusal, in a few words of ours. */
function tlsReason(err: unknown): string {
  const text = err instanceof Error ? err.message : "";
  if (/key too small/i.test(text)) return "the key is too small (use RSA 2048 or larger, or EC)";
  if (/md too weak/i.test(text)) return "signed with a digest too weak for TLS";
  return "the certificate and key cannot be used for TLS";
}
