import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  type ContainerBinding,
  DeleteContainerBindingResponseSchema,
  ListContainerBindingsResponseSchema,
} from "../../../gen/credbroker/v1/signing_service_pb.js";
import { displayName } from "../../core/names.js";
import { type ClientCommand, subcommandGroup } from "../client-command.js";
import type { Io } from "../io.js";
import { table } from "../render.js";

const SUBCOMMANDS: Record<string, Omit<ClientCommand, "command">> = {
  list: {
    args: "",
    about:
      "Lists live container bindings (admins: all; anyone else: its own), every page; never a token.",
    flags: [],
    async run(ctx) {
      const signing = ctx.client().signing;
      const bindings: ContainerBinding[] = [];
      let pageToken = "";
      do {
        const page = await signing.listContainerBindings({ pageSize: 1000, pageToken });
        bindings.push(...page.bindings);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      const all = create(ListContainerBindingsResponseSchema, { bindings });
      ctx.print(ListContainerBindingsResponseSchema, all, () =>
        table([
          ["ID", "CREDENTIAL", "CREATOR", "EXPIRES"],
          ...bindings.map((b) => [
            b.bindingId,
            displayName(b.namespace, b.credential),
            b.creator,
            b.expiresAt ? timestampDate(b.expiresAt).toISOString() : "-",
          ]),
        ]),
      );
    },
  },
  delete: {
    args: "ID",
    about: "Ends a binding at once (its creator or an admin).",
    flags: [],
    async run(ctx) {
      const res = await ctx.client().signing.deleteContainerBinding({ bindingId: ctx.arg });
      ctx.print(DeleteContainerBindingResponseSchema, res, () => `deleted binding ${ctx.arg}\n`);
    },
  },
};

const BINDING = subcommandGroup("binding", "   (container credentials)", SUBCOMMANDS);

/** `credbroker binding …`: returns the exit code. */
export function bindingCommand(argv: readonly string[], io: Io): Promise<number> {
  return BINDING.run(argv, io);
}
