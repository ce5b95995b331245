/**
 * `userns subid`: a user's /etc/subuid and /etc/subgid ranges, with overlaps
 * flagged, and optionally a free range.
 */
import type { Command } from "commander";
import { usageError } from "../errors.js";
import { parseSubid } from "../subid/parse.js";
import { findFreeRange } from "../subid/ranges.js";
import { parsePasswd, resolveUser, subidReport } from "../subid/read.js";
import { type CliIo, EXIT_REFUSED, parseDecimalId, readOptional } from "./io.js";
import { formatTable } from "./table.js";

function runSubid(
  io: CliIo,
  user: string | undefined,
  o: {
    json?: boolean;
    all?: boolean;
    free?: string;
    min?: string;
    align?: string;
    subuid: string;
    subgid: string;
    passwd: string;
  },
): void {
  const passwd = parsePasswd(readOptional(o.passwd));
  const subuid = parseSubid(readOptional(o.subuid));
  const subgid = parseSubid(readOptional(o.subgid));
  const who = o.all
    ? undefined
    : resolveUser(user ?? process.env.SUDO_USER ?? process.env.USER ?? process.getuid?.(), passwd);
  const report = subidReport(who, { subuid, subgid, passwd });
  let free: { start: number; count: number } | undefined | null = null;
  if (o.free !== undefined) {
    const size = parseDecimalId(o.free, "--free");
    if (!size) throw usageError("--free needs a size of at least 1");
    free = findFreeRange(size, {
      taken: [...subuid.entries, ...subgid.entries],
      min: parseDecimalId(o.min, "--min") ?? 100000,
      align: parseDecimalId(o.align, "--align") ?? 1,
    });
  }
  const missing = !o.all && report.subuid.length === 0 && report.subgid.length === 0;
  const failed = report.overlaps.length > 0 || missing || free === undefined;
  if (o.json) {
    io.out(`${JSON.stringify({ ...report, free: free === null ? undefined : (free ?? null) }, null, 2)}\n`);
  } else {
    const rows = [
      ...report.subuid.map((e) => ["subuid", e.owner, e.start, e.start + e.count - 1, e.count, e.line]),
      ...report.subgid.map((e) => ["subgid", e.owner, e.start, e.start + e.count - 1, e.count, e.line]),
    ];
    const name = o.all ? "all owners" : (report.user.name ?? String(report.user.uid));
    if (rows.length) {
      io.out(
        formatTable(rows, {
          header: ["FILE", "OWNER", "START", "END", "COUNT", "LINE"],
          align: ["left", "left", "right", "right", "right", "right"],
        }),
      );
    } else io.out(`no subordinate ids for ${name}\n`);
    if (report.overlaps.length) {
      io.out("\nOVERLAPS\n");
      io.out(
        formatTable(
          report.overlaps.map(({ file, overlap: ov }) => [
            file,
            ov.type,
            `${ov.start}-${ov.start + ov.count - 1}`,
            ov.message,
          ]),
          { header: ["FILE", "TYPE", "IDS", "WHAT"] },
        ),
      );
    }
    const warnings = report.warnings;
    if (warnings.length) {
      io.out("\nWARNINGS\n");
      for (const w of warnings) io.out(`  ${w}\n`);
    }
    if (free !== null) {
      io.out(
        free
          ? `\nfree range: ${free.start}-${free.start + free.count - 1} (${free.count} ids, overlaps no delegation in either file)\n`
          : "\nno free range of that size\n",
      );
    }
  }
  if (failed) process.exitCode = EXIT_REFUSED;
}

/** Adds `subid` to the program. */
export function registerSubidCommand(program: Command, io: CliIo): void {
  program
    .command("subid")
    .description("show a user's /etc/subuid and /etc/subgid ranges, with overlaps flagged")
    .argument("[user]", "login name or uid (default: you); matched by both forms, as shadow does")
    .option("--all", "check every owner, not one user")
    .option("--free <size>", "also find a free range of this size that overlaps no delegation")
    .option("--min <id>", "lowest start for --free (default 100000)")
    .option("--align <n>", "start --free on a multiple of n (e.g. 65536)")
    .option("--json", "print JSON")
    .option("--subuid <file>", "subuid file", "/etc/subuid")
    .option("--subgid <file>", "subgid file", "/etc/subgid")
    .option("--passwd <file>", "passwd file", "/etc/passwd")
    .addHelpText(
      "after",
      `
Examples:
  $ userns subid alice
  $ userns subid 1000 --json
  $ userns subid --all
  $ userns subid --all --free 65536 --align 65536

Exit codes: 0 ranges found and no overlaps, 1 overlaps, no ranges or no free range, 2 usage.`,
    )
    .action((user: string | undefined, opts: Parameters<typeof runSubid>[2]) => runSubid(io, user, opts));
}
