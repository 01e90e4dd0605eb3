#!/usr/bin/env node
import { runCli } from "./run.js";

// Exit explicitly: the daemon's exit code must not wait on stray handles.
process.exit(await runCli(process.argv.slice(2), process.env));
