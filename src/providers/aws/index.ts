import type { CloudProvider } from "../provider.js";
import { authorizeLive, liveChecks } from "./live-verify.js";
import { validateSignRequest } from "./sign-plan.js";
import { type AwsSignerDeps, prepareAwsSign } from "./signer.js";
import type { StsGateway } from "./sts-gateway.js";
import type { TaskSessions } from "./task-sessions.js";

export interface AwsProviderDeps extends AwsSignerDeps {
  /** Task and instance sessions (container bindings, IMDS). */
  tasks: Pick<TaskSessions, "forCredential">;
  /** Live verification through STS; without it, none. */
  sts?: StsGateway | undefined;
}

/** AWS (and S3-compatible stores): SigV4 signing, STS sessions, live verify through STS. */
export function awsProvider(deps: AwsProviderDeps): CloudProvider {
  const { sts, roleSessions, tasks } = deps;
  return {
    label: "AWS",
    kinds: ["accessKey", "role"],
    metadata: ["ec2-imds", "ecs-container"],
    prepareSign: (req) => prepareAwsSign(validateSignRequest(req), deps),
    taskSession: (namespace, name, expectedId) => tasks.forCredential(namespace, name, expectedId),
    live:
      sts === undefined
        ? undefined
        : {
            authorize: authorizeLive,
            checks: (c) => liveChecks(c, { sts, roleSessions }),
          },
  };
}
