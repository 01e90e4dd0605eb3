import { clone } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type Caller, CallerRole, CallerSchema } from "../../gen/credbroker/v1/caller_pb.js";
import type { CallerService } from "../../gen/credbroker/v1/caller_service_pb.js";
import { newToken } from "../auth/admin-token.js";
import { BOOTSTRAP_ADMIN, tokenHash } from "../auth/caller-directory.js";
import { authorizeAdmin } from "../core/authz.js";
import { DomainError } from "../core/errors.js";
import type { Ambient } from "../core/lifecycle.js";
import { isValidName, isValidNamespace } from "../core/names.js";
import type { CallerStore } from "../store/caller-store.js";
import { callerOf } from "./caller-context.js";

export interface CallerServiceDeps {
  callers: CallerStore;
  ambient: Ambient;
  /** Told after every caller write, so cached token lookups are dropped. */
  changed(): void;
}

const UPDATABLE = new Set(["role", "namespaces", "enabled", "expires_at", "certificate_subject"]);

/** A caller declared in a config file changes only with the file. */
function assertUnmanaged(c: Caller): void {
  if (c.managedBy !== "") {
    throw new DomainError(
      "failed_precondition",
      `caller ${c.name} is declared in ${c.managedBy}: change it there`,
    );
  }
}

function validate(c: Caller, now: Date): void {
  const problems: string[] = [];
  if (!isValidName(c.name)) problems.push("name: 1-64 of letters, digits, '.', '_', '-'");
  if (c.name === BOOTSTRAP_ADMIN)
    problems.push(`name: "${BOOTSTRAP_ADMIN}" is the bootstrap admin (admin.token)`);
  if (!(c.role in CallerRole) || c.role === CallerRole.UNSPECIFIED) {
    problems.push("role: CALLER_ROLE_ADMIN, _WRITER, _READER or _SIGNER");
  }
  if (c.namespaces.length > 100 || !c.namespaces.every(isValidNamespace)) {
    problems.push("namespaces: at most 100, each empty or 1-64 of letters, digits, '.', '_', '-'");
  }
  if (c.certificateSubject.length > 512)
    problems.push("certificate_subject: at most 512 characters");
  if (c.expiresAt !== undefined && timestampDate(c.expiresAt) <= now)
    problems.push("expires_at: is in the past");
  if (problems.length > 0) throw new DomainError("invalid_argument", problems.join("; "));
}

/** CallerService: admins only. A token is shown once, at creation or rotation. */
export function callerService({
  callers,
  ambient,
  changed,
}: CallerServiceDeps): ServiceImpl<typeof CallerService> {
  return {
    async createCaller(req, ctx) {
      authorizeAdmin(callerOf(ctx));
      if (req.caller === undefined)
        throw new DomainError("invalid_argument", "caller: is required");
      const c = clone(CallerSchema, req.caller);
      const now = timestampFromDate(ambient.now());
      c.createdAt = now;
      c.updatedAt = now;
      c.enabled ??= true;
      c.managedBy = "";
      validate(c, ambient.now());
      const token = newToken();
      const stored = await callers.createCaller(c, tokenHash(token));
      changed();
      return { caller: stored, token };
    },

    async getCaller(req, ctx) {
      authorizeAdmin(callerOf(ctx));
      return { caller: await callers.getCaller(req.name) };
    },

    async listCallers(_req, ctx) {
      authorizeAdmin(callerOf(ctx));
      return { callers: await callers.listCallers() };
    },

    async updateCaller(req, ctx) {
      authorizeAdmin(callerOf(ctx));
      const patch = req.caller;
      const paths = req.updateMask?.paths ?? [];
      if (patch === undefined || paths.length === 0) {
        throw new DomainError(
          "invalid_argument",
          `caller and update_mask (${[...UPDATABLE].join(", ")}) are required`,
        );
      }
      const unknown = paths.filter((p) => !UPDATABLE.has(p));
      if (unknown.length > 0) {
        throw new DomainError(
          "invalid_argument",
          `update_mask: only ${[...UPDATABLE].join(", ")} can be updated`,
        );
      }
      const updated = await callers.updateCaller(req.name, (current) => {
        assertUnmanaged(current);
        const next = clone(CallerSchema, current);
        if (paths.includes("role")) next.role = patch.role;
        if (paths.includes("namespaces")) next.namespaces = [...patch.namespaces];
        if (paths.includes("enabled")) next.enabled = patch.enabled ?? true;
        if (paths.includes("expires_at")) next.expiresAt = patch.expiresAt;
        if (paths.includes("certificate_subject"))
          next.certificateSubject = patch.certificateSubject;
        next.updatedAt = timestampFromDate(ambient.now());
        validate(next, ambient.now());
        return next;
      });
      changed();
      return { caller: updated };
    },

    async deleteCaller(req, ctx) {
      authorizeAdmin(callerOf(ctx));
      assertUnmanaged(await callers.getCaller(req.name));
      await callers.deleteCaller(req.name);
      changed();
      return {};
    },

    async rotateCallerToken(req, ctx) {
      authorizeAdmin(callerOf(ctx));
      assertUnmanaged(await callers.getCaller(req.name));
      const token = newToken();
      await callers.rotateCallerToken(req.name, tokenHash(token));
      changed();
      return { token };
    },
  };
}
