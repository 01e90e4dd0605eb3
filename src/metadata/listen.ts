import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { hostForm } from "./guards.js";

/** A metadata protocol's HTTP server, listening. */
export interface MetadataListener {
  server: http.Server;
  /** The address and port the OS gave (port 0 asked for one). */
  bound: { host: string; port: number };
  /** http://host:port (IPv6 in brackets). */
  url: string;
  /** Stops accepting and drops every open connection. */
  close(): Promise<void>;
}

/**
 * An HTTP/1.1 server for a metadata protocol (IMDS, GCE, Azure identity):
 * small headers, 10 s to send a request, 5 s keep-alive, and every
 * connection tracked so close() ends idle keep-alive sockets too.
 */
export async function listenMetadata(host: string, port: number): Promise<MetadataListener> {
  const sockets = new Set<Socket>();
  const server = http.createServer({
    maxHeaderSize: 8192,
    headersTimeout: 10_000,
    requestTimeout: 10_000,
    keepAliveTimeout: 5_000,
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const bound = { host: address.address, port: address.port };
  return {
    server,
    bound,
    url: `http://${hostForm(bound.host)}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
