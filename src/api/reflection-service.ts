import {
  create,
  createRegistry,
  type DescFile,
  fromBinary,
  type MessageInitShape,
  type Registry,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
  type ServerReflection as ServerReflectionV1,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  type ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequestSchema as V1alphaRequestSchema,
  ServerReflectionResponseSchema as V1alphaResponseSchema,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** gRPC's NOT_FOUND, as the reflection protocol's error_code. */
const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

/**
 * What reflection can describe: the files of the served services and, through
 * their imports, every file they depend on.
 */
export class ReflectionIndex {
  readonly registry: Registry;
  private readonly files = new Map<string, DescFile>();

  constructor(
    readonly serviceNames: readonly string[],
    roots: readonly DescFile[],
  ) {
    const visit = (f: DescFile) => {
      if (this.files.has(f.proto.name)) return;
      this.files.set(f.proto.name, f);
      f.dependencies.forEach(visit);
    };
    roots.forEach(visit);
    this.registry = createRegistry(...this.files.values());
  }

  fileByName(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  /** The file declaring a message, enum, service, method, or extension. */
  fileContainingSymbol(symbol: string): DescFile | undefined {
    const direct = this.registry.get(symbol);
    if (direct !== undefined) return direct.file;
    const parent = symbol.slice(0, symbol.lastIndexOf("."));
    const owner = this.registry.get(parent);
    if (
      owner?.kind === "service" &&
      owner.methods.some((m) => m.name === symbol.slice(parent.length + 1))
    ) {
      return owner.file;
    }
    if (
      owner?.kind === "message" &&
      owner.fields.some((f) => f.name === symbol.slice(parent.length + 1))
    ) {
      return owner.file;
    }
    return undefined;
  }

  /** `file` first, then everything it imports, transitively, each once. */
  withDependencies(file: DescFile): Uint8Array[] {
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const visit = (f: DescFile) => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
      f.dependencies.forEach(visit);
    };
    visit(file);
    return out;
  }
}

type ResponseInit = MessageInitShape<typeof ServerReflectionResponseSchema>;

function answer(index: ReflectionIndex, req: ServerReflectionRequest): ServerReflectionResponse {
  return create(ServerReflectionResponseSchema, {
    validHost: req.host,
    originalRequest: req,
    messageResponse: respond(index, req.messageRequest),
  });
}

function respond(
  index: ReflectionIndex,
  r: ServerReflectionRequest["messageRequest"],
): ResponseInit["messageResponse"] {
  switch (r.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.serviceNames.map((name) => ({ name })) },
      };
    case "fileByFilename":
      return files(index, index.fileByName(r.value), "file");
    case "fileContainingSymbol":
      return files(index, index.fileContainingSymbol(r.value), "symbol");
    case "allExtensionNumbersOfType":
      return index.registry.getMessage(r.value) === undefined
        ? error(NOT_FOUND, "type not found")
        : { case: "allExtensionNumbersResponse", value: { baseTypeName: r.value } };
    case "fileContainingExtension":
      return error(NOT_FOUND, "no extensions are served");
    default:
      return error(INVALID_ARGUMENT, "empty reflection request");
  }
}

function files(
  index: ReflectionIndex,
  file: DescFile | undefined,
  what: string,
): ResponseInit["messageResponse"] {
  return file === undefined
    ? error(NOT_FOUND, `${what} not found`)
    : {
        case: "fileDescriptorResponse",
        value: { fileDescriptorProto: index.withDependencies(file) },
      };
}

function error(errorCode: number, errorMessage: string): ResponseInit["messageResponse"] {
  return { case: "errorResponse", value: { errorCode, errorMessage } };
}

/** grpc.reflection.v1.ServerReflection, so `buf curl` and grpcurl need no schema. */
export function reflectionServiceV1(
  index: ReflectionIndex,
): ServiceImpl<typeof ServerReflectionV1> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) yield answer(index, req);
    },
  };
}

/** The same service under v1alpha: the messages are wire-identical, so translate through bytes. */
export function reflectionServiceV1alpha(
  index: ReflectionIndex,
): ServiceImpl<typeof ServerReflectionV1alpha> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        const v1 = fromBinary(ServerReflectionRequestSchema, toBinary(V1alphaRequestSchema, req));
        const res = answer(index, v1);
        yield fromBinary(V1alphaResponseSchema, toBinary(ServerReflectionResponseSchema, res));
      }
    },
  };
}
