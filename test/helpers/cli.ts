/**
 * Runs CLI commands in-process, the way `main()` maps outcomes to exit codes:
 * 0 ok, the command's own process.exitCode, 2 for usage errors.
 */
import { Readable } from "node:stream";
import { Command } from "commander";

/** Output sinks (and optional stdin) a `register*Commands` function takes. */
export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  in?: Readable;
}

/** Registers commands with `register` on a fresh program and runs `args`; stdout and stderr are collected together. */
export async function runCommands(
  register: (program: Command, io: CliIo) => void,
  args: string[],
  stdin?: string,
): Promise<{ out: string; code: number }> {
  let out = "";
  const io: CliIo = {
    out: (s) => {
      out += s;
    },
    err: (s) => {
      out += s;
    },
    ...(stdin !== undefined ? { in: Readable.from([stdin]) } : {}),
  };
  const program = new Command("userns").exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
  register(program, io);
  process.exitCode = undefined;
  let code = 0;
  try {
    await program.parseAsync(args, { from: "user" });
    code = process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (e) {
    code = (e as { code?: string }).code === "ERR_USERNS_USAGE" ? 2 : 99;
  }
  process.exitCode = undefined;
  return { out, code };
}
