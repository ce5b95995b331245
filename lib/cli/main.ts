/**
 * The `userns` command line. Exit codes: 0 ok, 1 refused or failed check, 2 usage.
 */
import { Command, CommanderError } from "commander";
import { registerAllocCommands } from "./alloc.js";
import { registerCheckCommands } from "./check.js";
import { registerConvertCommand } from "./convert.js";
import { registerDoctorCommand } from "./doctor.js";
import { registerIdsCommand } from "./ids.js";
import { exitCodeOfError } from "./io.js";
import { registerLsCommand } from "./ls.js";
import { mountCasesVerifyExtension, registerMountCommands } from "./mount.js";
import { registerRunCommand } from "./run.js";
import { registerShiftCommands } from "./shift.js";
import { registerShowCommand } from "./show.js";
import { registerSubidCommand } from "./subid.js";
import { registerVerifyCommands } from "./verify.js";

/** `--help` examples for the commands that do not bring their own. */
const EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  demo: ["userns demo", "userns demo --json"],
  check: [
    "userns check '0 100000 65536'",
    "userns check '0 0 2000' --parent '0 100000 1000,1000 200000 1000'",
    "userns check '0 1000 1' --writer unprivileged --uid 1000 --gid 1000 --kind gid --setgroups deny --json",
    "userns check --batch cases.jsonl",
    "userns check --mount-batch mount-cases.jsonl",
  ],
  run: [
    "userns run --map-root-user -- id",
    "userns run --map-users 0:100000:65536 --map-groups 0:100000:65536 --user 0 --group 0 --mount --pid -- sh",
    "userns run --map-current-user --setgroups deny --net -- ip link",
  ],
  show: ["userns show self", "userns show 4242 --json"],
  shift: [
    "userns shift --map-users 0:100000:65536 /srv/rootfs",
    "userns shift --map-users 0:100000:65536 --reverse /srv/rootfs",
    "userns shift --rollback /srv/rootfs",
  ],
  mount: [
    "userns mount --map-users 0:100000:65536 /srv/data /mnt/shifted",
    "userns mount --userns 4242 --recursive --read-only /srv/image /mnt/image",
  ],
  verify: [
    "userns verify",
    "userns verify --cases 200000 --seed 2 --json",
    "userns verify --kernel-only --cases corpus.jsonl > kernel-results.jsonl",
    "userns verify --mount-cases test/fixtures/mount-cases.jsonl",
  ],
};

/** Documented exit codes. */
export const EXIT = { ok: 0, refused: 1, usage: 2 } as const;

/** Builds the command tree; `out` and `err` are where output goes (tests capture them). */
export function buildProgram(io: { out: (s: string) => void; err: (s: string) => void }): Command {
  const program = new Command("userns")
    .description("Linux user namespaces, id mappings and idmapped mounts")
    .version("0.1.0")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError();

  program
    .command("demo")
    .description("walk through what the library can do, for real, on this machine")
    .option("--json", "print the results as JSON")
    .action(async (opts: { json?: boolean }) => {
      // Loaded on use: the demo touches every part of the library.
      const { runDemo } = await import("./demo.js");
      await runDemo(io, { json: opts.json === true });
    });

  registerCheckCommands(program, io);
  registerMountCommands(program, io);
  registerConvertCommand(program, io);
  registerSubidCommand(program, io);
  registerDoctorCommand(program, io);
  registerVerifyCommands(program, io, [mountCasesVerifyExtension()]);
  // `run` turns on positional options for the whole program (options after COMMAND belong to it).
  registerRunCommand(program, io);
  registerShowCommand(program, io);
  registerLsCommand(program, io);
  registerIdsCommand(program, io);
  registerAllocCommands(program, io);
  registerShiftCommands(program, io);
  for (const cmd of program.commands) {
    const ex = EXAMPLES[cmd.name()];
    if (ex !== undefined) cmd.addHelpText("after", `\nExamples:\n${ex.map((e) => `  $ ${e}`).join("\n")}\n`);
  }

  return program;
}

/** Runs the CLI and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const io = {
    out: (s: string) => process.stdout.write(s),
    err: (s: string) => process.stderr.write(s),
  };
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: "user" });
    return process.exitCode === undefined ? EXIT.ok : Number(process.exitCode);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version") return EXIT.ok;
      return EXIT.usage;
    }
    return exitCodeOfError(e, io);
  }
}
