#!/usr/bin/env node
// A plain `userns ls` runs without commander and the other commands' modules (it is timed against lsns);
// every other command line goes through the whole CLI.
const argv = process.argv.slice(2);
const plain = argv[0] === "ls" ? await (await import("../dist/cli/ls.js")).plainLsMain(argv) : undefined;
process.exitCode = plain ?? (await (await import("../dist/cli/main.js")).main(argv));
