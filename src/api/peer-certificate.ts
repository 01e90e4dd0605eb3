import type http from "node:http";
import type http2 from "node:http2";
import type net from "node:net";
import { TLSSocket } from "node:tls";
import { type ContextValues, createContextKey, createContextValues } from "@connectrpc/connect";

/**
 * The subject of the client certificate the RPC's connection presented and
 * the listener verified (mutual TLS), in `certificateSubject`'s format; unset
 * without one. Set per request by `peerCertificateContext`, read by the auth
 * interceptor, which has no access to the socket.
 */
export const PEER_CERT_SUBJECT = createContextKey<string | undefined>(undefined, {
  description: "peer certificate subject",
});

/** The address of the RPC's peer (for the audit log and the failed-authentication throttle). */
export const PEER_ADDRESS = createContextKey<string | undefined>(undefined, {
  description: "peer address",
});

/**
 * A certificate subject as one string: its attributes in the order the
 * certificate lists them, each `SHORTNAME=value`, joined by "," with no
 * spaces, e.g. "CN=ci,O=team-a" for `openssl … -subj "/CN=ci/O=team-a"`;
 * the members of a multi-valued RDN are joined by "+" ("CN=ci+UID=7,O=t").
 * Values are UTF-8 with RFC 2253 escapes: `,` `+` `"` `\` `<` `>` `;` and a
 * leading `#` or space get a backslash, control characters become `\XX`.
 * Unlike RFC 4514 the order is not reversed. It is exactly what
 * `openssl x509 -noout -subject -nameopt esc_2253,esc_ctrl,utf8,sep_comma_plus,sname`
 * prints after "subject=". `subject` is Node's `X509Certificate.subject`
 * (one RDN per line, members joined by " + "); escaping leaves no raw line
 * break or unescaped "+" in a value, so the splits are exact.
 */
export function certificateSubject(subject: string): string {
  return subject
    .split("\n")
    .map((rdn) => rdn.split(" + ").join("+"))
    .join(",");
}

/**
 * The context values every RPC starts with: the peer's address
 * (PEER_ADDRESS) and, with mutual TLS, the verified client certificate's
 * subject (PEER_CERT_SUBJECT), from the connection's socket. Only an
 * `authorized` TLS socket counts, i.e. one whose certificate chained to the
 * listener's client CA. The subject is computed once per connection.
 */
export function peerContext(mutualTls: boolean): (socket: net.Socket | undefined) => ContextValues {
  const subjects = new WeakMap<TLSSocket, string | undefined>();
  const subjectOf = (socket: net.Socket | undefined): string | undefined => {
    if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
    if (!subjects.has(socket)) {
      const subject = socket.getPeerX509Certificate()?.subject;
      subjects.set(socket, subject === undefined ? undefined : certificateSubject(subject));
    }
    return subjects.get(socket);
  };
  return (socket) => {
    const values = createContextValues().set(PEER_ADDRESS, socket?.remoteAddress);
    return mutualTls ? values.set(PEER_CERT_SUBJECT, subjectOf(socket)) : values;
  };
}

/** The connection's socket of a request (an HTTP/2 request's `socket` is a proxy; the session holds the real one). */
export function socketOf(
  req: http.IncomingMessage | http2.Http2ServerRequest,
): net.Socket | undefined {
  return "stream" in req ? req.stream.session?.socket : req.socket;
}
