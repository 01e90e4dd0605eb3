#!/usr/bin/env node
import { processIo } from "./io.js";
import { runCli } from "./run.js";

// Exit explicitly: the exit code must not wait on stray handles (HTTP/2 sessions).
process.exit(await runCli(process.argv.slice(2), processIo()));
