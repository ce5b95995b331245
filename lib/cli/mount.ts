/**
 * `userns mount` (make and attach an idmapped mount, show what owners
 * become) and `userns verify --mount-cases` (replay §2 mount cases on the
 * kernel, in a private mount namespace, and compare with the model).
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { usageError } from "../errors.js";
import type { Extent } from "../model/extent.js";
import { IdMap } from "../model/idmap.js";
import type { MountCaseResult as ModelMountCaseResult } from "../model/mountcases.js";
import type { MountCaseResult } from "../mounts/cases.js";
import type { idmapMount } from "../mounts/idmap-mount.js";
import { parseMapTriple } from "../mounts/mapformats.js";
import type { VerifyExtension } from "./verify.js";

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** Aligned columns. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** Sample on-disk ids worth showing for a map: 0, 1000, 65534, and each extent's edges and the id past it. */
function samples(map: IdMap): number[] {
  const s = new Set<number>([0, 1000, 65534]);
  for (const e of map.extents as readonly Extent[]) {
    s.add(e.first);
    s.add(e.first + e.count - 1);
    if (e.first + e.count <= 0xfffffffe) s.add(e.first + e.count);
  }
  return [...s].sort((a, b) => a - b).slice(0, 12);
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

interface MountOpts {
  mapUsers: string[];
  mapGroups: string[];
  userns?: string;
  recursive?: boolean;
  readOnly?: boolean;
  json?: boolean;
}

async function mountAction(source: string, target: string, o: MountOpts, io: Io): Promise<void> {
  // Loaded on use: the CLI loads every command's module to build --help, so each keeps its imports to itself.
  const [{ native }, { idmapMount }, { inspectMount }] = await Promise.all([
    import("../kernel/native.js"),
    import("../mounts/idmap-mount.js"),
    import("../mounts/inspect.js"),
  ]);
  if (o.userns !== undefined && (o.mapUsers.length > 0 || o.mapGroups.length > 0)) {
    throw usageError("give --userns or --map-users/--map-groups, not both");
  }
  if (o.userns === undefined && o.mapUsers.length === 0)
    throw usageError("give --map-users (and --map-groups) or --userns");
  const common = { recursive: o.recursive === true, readOnly: o.readOnly === true };
  let m: ReturnType<typeof idmapMount>;
  if (o.userns !== undefined) {
    const path = /^\d+$/.test(o.userns) ? `/proc/${o.userns}/ns/user` : o.userns;
    const fd = native().openNs(path);
    try {
      m = idmapMount(source, { ...common, userns: { fd } });
    } finally {
      native().close(fd);
    }
  } else {
    const uid = IdMap.from(o.mapUsers.map(parseMapTriple));
    const gid = o.mapGroups.length > 0 ? IdMap.from(o.mapGroups.map(parseMapTriple)) : uid;
    m = idmapMount(source, { ...common, uidMap: uid, gidMap: gid });
  }
  try {
    m.attach(target);
  } catch (e) {
    m.close();
    throw e;
  }
  const info = inspectMount(target);
  m.close(); // the mount stays attached; the fd only pinned it
  const maps = info.maps;
  const uidRows = maps
    ? samples(maps.uid).map((id) => [String(id), String(info.predictOwner({ uid: id, gid: 0 }).uid)])
    : [];
  const gidRows = maps
    ? samples(maps.gid).map((id) => [String(id), String(info.predictOwner({ uid: 0, gid: id }).gid)])
    : [];
  if (o.json) {
    io.out(
      `${JSON.stringify({
        source,
        target,
        mountId: String(info.mountId),
        fsType: info.fsType ?? null,
        mapsFrom: info.mapsFrom,
        uidMap: maps?.uid.toJSON() ?? null,
        gidMap: maps?.gid.toJSON() ?? null,
        crossCheck: info.crossCheck ? info.crossCheck.agrees : null,
        uids: uidRows.map(([d, s]) => ({ onDisk: Number(d), seen: Number(s) })),
        gids: gidRows.map(([d, s]) => ({ onDisk: Number(d), seen: Number(s) })),
      })}\n`,
    );
    return;
  }
  io.out(
    `mounted ${source} at ${target} (${info.fsType ?? "?"}, idmapped; maps ${info.mapsFrom === "statmount" ? "read back with statmount" : `from ${info.mapsFrom}`})\n`,
  );
  if (info.crossCheck) io.out(`read-back ${info.crossCheck.agrees ? "agrees" : "DISAGREES"} with the maps set\n`);
  io.out(
    `\n${table([["on-disk uid", "seen uid"], ...uidRows])}\n\n${table([["on-disk gid", "seen gid"], ...gidRows])}\n`,
  );
}

/** A field-by-field difference between a kernel result and a model prediction. */
export interface MountDisagreement {
  id: string;
  field: string;
  kernel: unknown;
  model: unknown;
}

/** Compares two §2 results field by field (setup/input diagnostics excluded), listing each differing leaf. */
export function compareMountResults(kernel: MountCaseResult, model: ModelMountCaseResult): MountDisagreement[] {
  const out: MountDisagreement[] = [];
  const skip = new Set(["setup_error", "error", "stage"]);
  const walk = (k: unknown, m: unknown, path: string) => {
    if (typeof k === "object" && k !== null && typeof m === "object" && m !== null) {
      const keys = new Set([...Object.keys(k), ...Object.keys(m)]);
      for (const key of keys) {
        if (path === "" && skip.has(key)) continue;
        walk(
          (k as Record<string, unknown>)[key],
          (m as Record<string, unknown>)[key],
          path === "" ? key : `${path}.${key}`,
        );
      }
      return;
    }
    if (JSON.stringify(k ?? null) !== JSON.stringify(m ?? null))
      out.push({ id: kernel.id, field: path, kernel: k, model: m });
  };
  walk(kernel, model, "");
  return out;
}

/**
 * The idmapped-mount cases (case-formats §2) as a campaign of `userns verify
 * --mount-cases FILE`: each case runs on the kernel in a private mount
 * namespace and through the model. With --kernel-only it prints the kernel's
 * results, one §2 JSON line per case in input order; otherwise it prints each
 * disagreement and returns its summary to the verify command.
 */
export function mountCasesVerifyExtension(): VerifyExtension {
  return {
    flag: "--mount-cases <file>",
    key: "mountCases",
    description: "also replay idmapped-mount cases (JSON lines, case-formats §2) from a file, or - for stdin",
    prefix: "mount.",
    async run(file, { json, kernelOnly, io }) {
      const [{ predictMountCase }, { parseMountCases, runMountCasesKernel }] = await Promise.all([
        import("../model/mountcases.js"),
        import("../mounts/cases.js"),
      ]);
      let text: string;
      try {
        text = readFileSync(file === "-" ? 0 : file, "utf8");
      } catch (e) {
        throw usageError(`--mount-cases: cannot read ${file}: ${(e as Error).message}`);
      }
      const cases = parseMountCases(text);
      const started = performance.now();
      const results = await runMountCasesKernel(cases);
      const seconds = (performance.now() - started) / 1000;
      if (kernelOnly) {
        for (const r of results) io.out(`${JSON.stringify(r)}\n`);
      }
      const byField: Record<string, number> = {};
      let disagree = 0;
      cases.forEach((c, i) => {
        if ("inputError" in c) return;
        const ds = kernelOnly ? [] : compareMountResults(results[i]!, predictMountCase(c));
        if (ds.length > 0) disagree++;
        for (const d of ds) {
          byField[d.field] = (byField[d.field] ?? 0) + 1;
          const msg = { id: d.id, field: d.field, kernel: d.kernel, model: d.model };
          io.out(
            json
              ? `${JSON.stringify({ disagreement: msg })}\n`
              : `# disagreement ${d.id}: ${d.field}: kernel ${JSON.stringify(d.kernel)}, model ${JSON.stringify(d.model)}\n`,
          );
        }
      });
      const setupFailures = results.filter((r) => r.stage === "setup").length;
      if (setupFailures > 0) byField.setup = setupFailures;
      return {
        cases: cases.length,
        agree: cases.length - disagree - setupFailures,
        disagree: disagree + setupFailures,
        byField,
        casesPerSecond: seconds > 0 ? Math.round((cases.length / seconds) * 10) / 10 : 0,
      };
    },
  };
}

/** Adds `mount` to the program. */
export function registerMountCommands(program: Command, io: Io): void {
  program
    .command("mount")
    .description(
      "make an idmapped mount of SOURCE at TARGET (in this mount namespace) and show what owners become; maps go on-disk:seen:count",
    )
    .argument("<source>")
    .argument("<target>")
    .option("--map-users <ondisk:seen:count>", "uid extent in the mount direction (repeatable)", collect, [])
    .option(
      "--map-groups <ondisk:seen:count>",
      "gid extent in the mount direction (repeatable; default: as --map-users)",
      collect,
      [],
    )
    .option("--userns <pid|path>", "use this user namespace's maps instead")
    .option("--recursive", "clone and idmap the whole subtree (AT_RECURSIVE)")
    .option("--read-only", "make the mount read-only")
    .option("--json", "print the result as JSON")
    .action(async (source: string, target: string, opts: MountOpts) => {
      await mountAction(source, target, opts, io);
    });
}
