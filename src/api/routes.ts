import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import {
  CallerService,
  file_credbroker_v1_caller_service,
} from "../../gen/credbroker/v1/caller_service_pb.js";
import {
  CredentialService,
  file_credbroker_v1_credential_service,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import {
  file_credbroker_v1_key_service,
  KeyService,
} from "../../gen/credbroker/v1/key_service_pb.js";
import {
  file_credbroker_v1_server_service,
  ServerService,
} from "../../gen/credbroker/v1/server_service_pb.js";
import {
  file_credbroker_v1_signing_service,
  SigningService,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { file_grpc_health_v1_health, Health } from "../../gen/grpc/health/v1/health_pb.js";
import {
  file_grpc_reflection_v1_reflection,
  ServerReflection as ReflectionV1,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  file_grpc_reflection_v1alpha_reflection,
  ServerReflection as ReflectionV1alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { type CallerServiceDeps, callerService } from "./caller-service.js";
import { type CredentialServiceDeps, credentialService } from "./credential-service.js";
import { type HealthState, healthService } from "./health-service.js";
import { type KeyServiceDeps, keyService } from "./key-service.js";
import {
  ReflectionIndex,
  reflectionServiceV1,
  reflectionServiceV1alpha,
} from "./reflection-service.js";
import { type ServerServiceDeps, serverService } from "./server-service.js";
import { type SigningServiceDeps, signingService } from "./signing-service.js";

/** The names health and reflection report. */
export const SERVED_SERVICES = [
  CredentialService.typeName,
  SigningService.typeName,
  CallerService.typeName,
  KeyService.typeName,
  ServerService.typeName,
  Health.typeName,
  ReflectionV1.typeName,
  ReflectionV1alpha.typeName,
];

export interface RouteDeps extends Omit<CredentialServiceDeps, "reads">, SigningServiceDeps {
  providers: SigningServiceDeps["providers"];
  health: HealthState;
  callerAdmin: CallerServiceDeps;
  keys: KeyServiceDeps;
  server: ServerServiceDeps;
}

/** A service and its implementation. */
export interface ServedService {
  service: DescService;
  impl: Partial<ServiceImpl<DescService>>;
}

/** Every service the API listener serves, implemented. */
export function apiServices(deps: RouteDeps): ServedService[] {
  const reflection = new ReflectionIndex(SERVED_SERVICES, [
    file_credbroker_v1_credential_service,
    file_credbroker_v1_signing_service,
    file_credbroker_v1_caller_service,
    file_credbroker_v1_key_service,
    file_credbroker_v1_server_service,
    file_grpc_health_v1_health,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
  ]);
  const served = <S extends DescService>(service: S, impl: ServiceImpl<S>): ServedService => ({
    service,
    impl: impl as Partial<ServiceImpl<DescService>>,
  });
  return [
    served(CredentialService, credentialService(deps)),
    served(SigningService, signingService(deps)),
    served(CallerService, callerService(deps.callerAdmin)),
    served(KeyService, keyService(deps.keys)),
    served(ServerService, serverService(deps.server)),
    served(Health, healthService(deps.health)),
    served(ReflectionV1, reflectionServiceV1(reflection)),
    served(ReflectionV1alpha, reflectionServiceV1alpha(reflection)),
  ];
}

/**
 * The request paths whose client sends a stream of messages (ImportCredentials,
 * reflection): their bodies may take longer than one request deadline, so
 * they get an idle deadline instead (see deadlines.ts).
 */
export function clientStreamPaths(services: ServedService[]): ReadonlySet<string> {
  const paths = new Set<string>();
  for (const { service } of services) {
    for (const method of service.methods) {
      if (method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming") {
        paths.add(`/${service.typeName}/${method.name}`);
      }
    }
  }
  return paths;
}

/** Registers `services` on a connect router. */
export function routesOf(services: ServedService[]): (router: ConnectRouter) => void {
  return (router) => {
    for (const { service, impl } of services) router.service(service, impl);
  };
}
