import type { Severity } from "../../gen/credbroker/v1/credential_service_pb.js";

/** One structural check: its name, whether it passed, its message (field path first), its severity (default ERROR). */
export type Rule = [check: string, ok: boolean, message: string, severity?: Severity];
