import type { HttpRequest, MetadataBearer, RequestPresigner } from "@smithy/types";

/** What getSignedUrl needs of an SDK client: its middleware stack and config. */
interface PresignableClient {
  middlewareStack: { clone(): unknown };
  config: { region: () => Promise<string>; signer: (...args: never[]) => Promise<unknown> };
}

interface PresignableCommand {
  input: unknown;
  resolveMiddleware(
    stack: never,
    config: never,
    options: never,
  ): (args: never) => Promise<{ output: unknown }>;
}

/**
 * Presigns an SDK command through the client's brokerSigner, the way
 * @aws-sdk/s3-request-presigner builds the request (which itself would use
 * `config.credentials`, i.e. the placeholder, and so cannot be used).
 */
export async function getSignedUrl(
  client: PresignableClient,
  command: PresignableCommand,
  options: { expiresIn?: number } = {},
): Promise<string> {
  const signer = (await client.config.signer()) as Partial<RequestPresigner>;
  if (typeof signer.presign !== "function") {
    throw new TypeError("getSignedUrl: the client's signer cannot presign (use brokerSigner)");
  }
  const presign = signer.presign.bind(signer);
  const region = await client.config.region();
  const stack = client.middlewareStack.clone() as {
    add(
      mw: unknown,
      options: { step: string; name: string; priority: string; override: boolean },
    ): void;
  };
  stack.add(
    (_next: unknown) => async (args: { request: HttpRequest }) => {
      const request = args.request;
      for (const h of ["amz-sdk-invocation-id", "amz-sdk-request", "x-amz-user-agent"])
        delete request.headers[h];
      const presigned = await presign(request, {
        expiresIn: options.expiresIn ?? 900,
        signingRegion: region,
        signingService: "s3",
      });
      return {
        response: {},
        output: { $metadata: { httpStatusCode: 200 }, presigned } as MetadataBearer,
      };
    },
    // Before anything signs, after the request is built: the start of finalizeRequest.
    { step: "finalizeRequest", name: "credbrokerPresign", priority: "high", override: true },
  );
  const handler = command.resolveMiddleware(stack as never, client.config as never, {} as never);
  const { output } = await handler({ input: command.input } as never);
  const r = (output as { presigned: HttpRequest }).presigned;
  const query = new URLSearchParams(
    Object.entries(r.query ?? {}).flatMap(([k, v]) =>
      Array.isArray(v)
        ? v.map((x): [string, string] => [k, x])
        : [[k, v ?? ""] as [string, string]],
    ),
  )
    .toString()
    .replace(/\+/g, "%20");
  return `${r.protocol}//${r.hostname}${r.port ? `:${r.port}` : ""}${r.path}${query ? `?${query}` : ""}`;
}
