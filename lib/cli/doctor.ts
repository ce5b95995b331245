/**
 * `userns doctor`: what this machine allows, each check with a verdict.
 *
 * Facts are gathered through a small {@link DoctorEnv} (files, links,
 * programs) so the verdicts can be tested with fake machines; the real
 * environment reads /proc, /sys and PATH. Features are judged by kernel
 * version where no probe exists here, and say so.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { release } from "node:os";
import { delimiter, join, sep } from "node:path";
import type { Command } from "commander";
import { native, nativeStatus } from "../kernel/native.js";
import { INIT_USER_NS_INO } from "../kernel/nsfs.js";
import { IDMAP_FS_NEVER, IDMAP_FS_SINCE } from "../model/idmappable.js";
import { parseMountinfo } from "../model/mountinfo.js";
import { probeIdmapSupport } from "../mounts/probe.js";
import { parseSubid } from "../subid/parse.js";
import { parsePasswd, resolveUser, subidReport } from "../subid/read.js";
import { type CliIo, EXIT_REFUSED } from "./io.js";
import { formatTable } from "./table.js";

/** A check's outcome. `fail` makes `doctor` exit 1. */
export type Verdict = "ok" | "warn" | "fail" | "info";

/** One line of the doctor's report. */
export interface DoctorCheck {
  readonly id: string;
  readonly title: string;
  readonly verdict: Verdict;
  readonly detail: string;
  /** How the verdict was reached: `probe` (asked the system) or `kernel-version` (from the version table). */
  readonly basis: "probe" | "kernel-version" | "config";
  readonly data?: unknown;
}

/** What the doctor reads; the default reads the real machine. */
export interface DoctorEnv {
  release(): string;
  readFile(path: string): string | undefined;
  /** PIDs under /proc. */
  pids(): string[];
  readlink(path: string): string | undefined;
  /** First executable named `name` on PATH or in the sbin/bin directories. */
  which(name: string): string | undefined;
  /** Mode and owner of a file. */
  stat(path: string): { mode: number; uid: number } | undefined;
  /** `getcap` output for a file, or undefined when getcap is not installed. */
  getcap(path: string): string | undefined;
  /** Deepest user-namespace nesting below ours (NS_GET_PARENT walks), or undefined when unavailable. */
  nestingBelow(): number | undefined;
  uid(): number;
  user(): string | undefined;
  /**
   * Probes idmapped-mount support for the filesystem mounted at `mountPoint`
   * on this kernel (a detached clone, never attached), or undefined where no
   * probe can run (not root). Optional, so checks fall back to the version table.
   */
  probeIdmap?(mountPoint: string): { supported: boolean; detail: string } | undefined;
  /**
   * Loads the native addon and says where from, or why it could not be
   * loaded (every place tried, and the command that fixes it). Optional, so
   * fake machines without it skip the check.
   */
  addon?(): { ok: boolean; detail: string; data?: unknown };
}

function safe<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

/** The real machine. */
export function realDoctorEnv(): DoctorEnv {
  return {
    release: () => release(),
    readFile: (p) => safe(() => readFileSync(p, "utf8")),
    pids: () => safe(() => readdirSync("/proc").filter((d) => /^[0-9]+$/.test(d))) ?? [],
    readlink: (p) => safe(() => readlinkSync(p)),
    which: (name) => {
      const dirs = [
        ...(process.env.PATH ?? "").split(delimiter),
        "/usr/bin",
        "/usr/sbin",
        "/bin",
        "/sbin",
        "/usr/local/bin",
      ];
      for (const d of dirs) {
        if (!d) continue;
        const p = join(d, name);
        const st = safe(() => statSync(p));
        if (st?.isFile() && (st.mode & 0o111) !== 0) return p;
      }
      return undefined;
    },
    stat: (p) => safe(() => statSync(p)),
    getcap: (p) => {
      const bin = ["/usr/sbin/getcap", "/sbin/getcap", "/usr/bin/getcap"].find(
        (b) => safe(() => statSync(b)) !== undefined,
      );
      if (!bin) return undefined;
      return (
        safe(() => execFileSync(bin, [p], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5000 })) ??
        ""
      );
    },
    nestingBelow: () => safe(() => deepestNesting()),
    probeIdmap: (mountPoint) => {
      // The probe needs CAP_SYS_ADMIN over this mount namespace; elsewhere the version table answers.
      if (process.getuid?.() !== 0) return undefined;
      const r = safe(() => probeIdmapSupport(mountPoint));
      if (r === undefined) return undefined;
      return r.supported
        ? { supported: true, detail: `yes: a clone of ${mountPoint} was idmapped (probed)` }
        : { supported: false, detail: `no: ${r.error?.message ?? r.refusal ?? "refused"}` };
    },
    addon: () => {
      const st = nativeStatus();
      if (!st.ok) return { ok: false, detail: st.error?.reason ?? String(st.error), data: { tried: st.tried } };
      const b = native();
      const kind = st.path?.includes(`${sep}prebuilds${sep}`) ? "prebuilt" : "built here";
      return {
        ok: true,
        detail: `loaded (${kind}): ${st.path}; spawn path: ${b.spawnUsesCloneVm() ? "CLONE_VM on its own stack" : "fork-like clone3"}`,
        data: { path: st.path, tried: st.tried },
      };
    },
    uid: () => process.getuid?.() ?? -1,
    user: () => safe(() => process.env.SUDO_USER || process.env.USER) || undefined,
  };
}

/** Walks NS_GET_PARENT from every process's user namespace up to ours; the longest walk is the deepest nesting below us. */
function deepestNesting(): number {
  const b = native();
  const seen = new Set<string>();
  let deepest = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^[0-9]+$/.test(d))) {
    const link = safe(() => readlinkSync(`/proc/${pid}/ns/user`));
    if (!link || seen.has(link)) continue;
    seen.add(link);
    let fd = safe(() => b.openNs(`/proc/${pid}/ns/user`));
    if (fd === undefined) continue;
    let depth = 0;
    // NS_GET_PARENT fails (EPERM) once the parent is outside our own namespace: that is our level
    for (;;) {
      const parent = safe(() => b.nsGetParent(fd!));
      b.close(fd);
      if (parent === undefined || depth > 64) break;
      fd = parent;
      depth++;
    }
    deepest = Math.max(deepest, depth);
  }
  return deepest;
}

/** `major.minor` of a kernel release string, e.g. "6.18.0-foo" → [6, 18]. */
export function kernelVersion(rel: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

const atLeast = (v: [number, number] | undefined, major: number, minor: number) =>
  v !== undefined && (v[0] > major || (v[0] === major && v[1] >= minor));

// The filesystem table is the model's (one list, lib/model/idmappable.ts); doctor words it by version.
export { IDMAP_FS_NEVER, IDMAP_FS_SINCE } from "../model/idmappable.js";

/** The idmapped-mount verdict for one filesystem type by kernel version. */
export function idmapSupportByVersion(
  fs: string,
  v: [number, number] | undefined,
): { supported: boolean | undefined; detail: string } {
  const base = fs.startsWith("fuse.") ? "fuse" : fs;
  const row = IDMAP_FS_SINCE[base];
  if (row) {
    const inRange =
      atLeast(v, ...row.since) && (row.until === undefined || !atLeast(v, row.until[0], row.until[1] + 1));
    const range = `since ${row.since.join(".")}${row.until ? `, until ${row.until.join(".")}` : ""}`;
    return {
      supported: inRange,
      detail: `${inRange ? "yes" : "no"} (${range}${row.note ? `; ${row.note}` : ""})`,
    };
  }
  const never = IDMAP_FS_NEVER[base];
  if (never) return { supported: false, detail: `no: ${never}` };
  return { supported: undefined, detail: "not in the FS_ALLOW_IDMAP table: assume no" };
}

/** The first mount point (field 5) of each filesystem type in mountinfo, to probe one mount per type. */
export function firstMountPoints(mountinfo: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of parseMountinfo(mountinfo))
    if (m.fsType && m.target && !out.has(m.fsType)) out.set(m.fsType, m.target);
  return out;
}

/** Filesystem types in mountinfo (the field after " - "), with a mount count each. */
export function mountedFsTypes(mountinfo: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of parseMountinfo(mountinfo)) if (m.fsType) out.set(m.fsType, (out.get(m.fsType) ?? 0) + 1);
  return out;
}

/** True when `getcap` output grants `cap` effective and permitted (`cap_setuid=ep`, `cap_setuid+ep`, `cap_a,cap_setuid=eip`). */
export function hasFileCap(getcapOutput: string, cap: string): boolean {
  for (const m of getcapOutput.toLowerCase().matchAll(/((?:cap_[a-z_]+,?)+)\s*[=+]([eip]+)/g)) {
    if (m[1]!.split(",").includes(cap) && m[2]!.includes("e") && m[2]!.includes("p")) return true;
  }
  return false;
}

function readInt(env: DoctorEnv, path: string): number | undefined {
  const s = env.readFile(path)?.trim();
  return s !== undefined && /^-?[0-9]+$/.test(s) ? Number(s) : undefined;
}

/** Every check, in report order. `user` is whose /etc/subuid entries to show (default: the invoking user). */
export function doctorChecks(env: DoctorEnv, options: { user?: string } = {}): DoctorCheck[] {
  const checks: DoctorCheck[] = [];
  const rel = env.release();
  const v = kernelVersion(rel);
  const byVersion = (id: string, title: string, major: number, minor: number, what: string) =>
    checks.push({
      id,
      title,
      verdict: atLeast(v, major, minor) ? "ok" : "fail",
      detail: `${atLeast(v, major, minor) ? "available" : "missing"}: ${what} since ${major}.${minor} (by kernel version)`,
      basis: "kernel-version",
    });

  checks.push({
    id: "kernel",
    title: "kernel version",
    verdict: v ? "info" : "warn",
    detail: rel,
    basis: "probe",
    data: { release: rel },
  });
  const addon = env.addon?.();
  if (addon !== undefined)
    checks.push({
      id: "addon",
      title: "native addon",
      verdict: addon.ok ? "ok" : "fail",
      detail: addon.detail,
      basis: "probe",
      data: addon.data,
    });
  byVersion("clone3", "clone3", 5, 3, "clone3(2)");
  byVersion("pidfd", "pidfd", 5, 3, "CLONE_PIDFD (5.2) and pidfd_open(2)");
  byVersion("mount_setattr", "mount_setattr + idmapped mounts", 5, 12, "mount_setattr(2) with MOUNT_ATTR_IDMAP");
  checks.push({
    id: "open_tree_attr",
    title: "open_tree_attr (change an idmap)",
    verdict: atLeast(v, 6, 15) ? "ok" : "info",
    detail: `${atLeast(v, 6, 15) ? "available" : "missing"}: open_tree_attr(2) since 6.15 (by kernel version)`,
    basis: "kernel-version",
  });

  // idmapped mounts per mounted filesystem type
  const mounted = mountedFsTypes(env.readFile("/proc/self/mountinfo") ?? "");
  const registered = (env.readFile("/proc/filesystems") ?? "")
    .split("\n")
    .map((l) => l.trim().split(/\s+/).pop() ?? "")
    .filter((x) => x !== "");
  const points = firstMountPoints(env.readFile("/proc/self/mountinfo") ?? "");
  for (const [fs, n] of [...mounted].sort((a, b) => a[0].localeCompare(b[0]))) {
    const where = points.get(fs);
    const probed = where !== undefined ? env.probeIdmap?.(where) : undefined;
    const s = probed ?? idmapSupportByVersion(fs, v);
    const count = `${n} mount${n === 1 ? "" : "s"}${registered.includes(fs) ? "" : ", not in /proc/filesystems"}`;
    checks.push({
      id: `idmap-fs:${fs}`,
      title: `idmapped mount: ${fs}`,
      verdict: s.supported ? "ok" : "info",
      detail: probed ? `${s.detail} [${count}]` : `${s.detail} [by kernel version; ${count}]`,
      basis: probed ? "probe" : "kernel-version",
    });
  }

  // namespace limits and use
  const max = readInt(env, "/proc/sys/user/max_user_namespaces");
  const links = new Set<string>();
  for (const pid of env.pids()) {
    const l = env.readlink(`/proc/${pid}/ns/user`);
    if (l) links.add(l);
  }
  const used = links.size;
  checks.push({
    id: "max_user_namespaces",
    title: "user.max_user_namespaces",
    verdict: max === undefined ? "warn" : max === 0 ? "fail" : used >= max * 0.9 ? "warn" : "ok",
    detail:
      max === undefined
        ? "cannot read /proc/sys/user/max_user_namespaces"
        : max === 0
          ? "0: creating user namespaces is disabled (ENOSPC)"
          : `${max} allowed per user; ${used} distinct user namespace${used === 1 ? "" : "s"} in use by visible processes`,
    basis: "probe",
    data: { max, inUse: used },
  });
  const self = env.readlink("/proc/self/ns/user");
  const ino = self ? /\[(\d+)\]/.exec(self)?.[1] : undefined;
  const inInit = ino !== undefined && BigInt(ino) === INIT_USER_NS_INO;
  const below = env.nestingBelow();
  checks.push({
    id: "nesting",
    title: "nesting depth",
    verdict: inInit ? "ok" : "info",
    detail:
      (inInit
        ? "this process is in the initial user namespace (depth 0 of at most 32)"
        : "this process is in a nested user namespace (its depth cannot be seen from inside; the limit is 32 levels)") +
      (below !== undefined ? `; deepest namespace below: ${below} level${below === 1 ? "" : "s"}` : ""),
    basis: "probe",
    data: { initial: inInit, deepestBelow: below },
  });

  // newuidmap / newgidmap
  for (const [prog, cap] of [
    ["newuidmap", "cap_setuid"],
    ["newgidmap", "cap_setgid"],
  ] as const) {
    const path = env.which(prog);
    if (!path) {
      checks.push({
        id: prog,
        title: prog,
        verdict: "warn",
        detail: "not installed: rootless tools (podman, lxc, unshare --map-auto) cannot map subordinate ids",
        basis: "probe",
      });
      continue;
    }
    const st = env.stat(path);
    const setuid = st !== undefined && (st.mode & 0o4000) !== 0 && st.uid === 0;
    const caps = env.getcap(path);
    const fileCap = caps !== undefined && hasFileCap(caps, cap);
    const how = setuid ? "setuid root" : fileCap ? `file capability (${caps?.trim()})` : undefined;
    checks.push({
      id: prog,
      title: prog,
      verdict: how ? "ok" : "fail",
      detail: how
        ? `${path}: ${how}`
        : `${path}: neither setuid root nor ${cap} file capability${caps === undefined ? " (getcap not installed)" : ""}: it will fail with EPERM`,
      basis: "probe",
      data: { path, setuid, fileCap: caps },
    });
  }

  // /etc/subuid entries of the user
  const passwd = parsePasswd(env.readFile("/etc/passwd") ?? "");
  const who = resolveUser(options.user ?? env.user() ?? String(env.uid()), passwd);
  const report = subidReport(who, {
    subuid: parseSubid(env.readFile("/etc/subuid") ?? ""),
    subgid: parseSubid(env.readFile("/etc/subgid") ?? ""),
    passwd,
  });
  const name = who.name ?? String(who.uid);
  const fmt = (es: readonly { start: number; count: number }[]) =>
    es.length ? es.map((e) => `${e.start}-${e.start + e.count - 1}`).join(", ") : "none";
  checks.push({
    id: "subid",
    title: `/etc/subuid, /etc/subgid for ${name}`,
    verdict: report.overlaps.length
      ? "fail"
      : report.subuid.length === 0 || report.subgid.length === 0 || report.warnings.length
        ? "warn"
        : "ok",
    detail: `subuid ${fmt(report.subuid)}; subgid ${fmt(report.subgid)}${report.overlaps.length ? `; ${report.overlaps.length} overlap(s): run userns subid` : ""}${report.warnings.length ? `; ${report.warnings.length} warning(s)` : ""}`,
    basis: "config",
    data: report,
  });

  // distribution policy
  const clone = readInt(env, "/proc/sys/kernel/unprivileged_userns_clone");
  if (clone !== undefined) {
    checks.push({
      id: "unprivileged_userns_clone",
      title: "kernel.unprivileged_userns_clone",
      verdict: clone === 0 ? "fail" : "ok",
      detail:
        clone === 0 ? "0: unprivileged users cannot create user namespaces (Debian/Ubuntu patch)" : `${clone}: allowed`,
      basis: "probe",
    });
  }
  const aa = readInt(env, "/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  if (aa !== undefined) {
    checks.push({
      id: "apparmor_restrict_unprivileged_userns",
      title: "kernel.apparmor_restrict_unprivileged_userns",
      verdict: aa === 1 ? "warn" : "ok",
      detail:
        aa === 1
          ? "1: unprivileged user namespaces get no capabilities unless the program has an AppArmor profile allowing userns (Ubuntu 24.04+); writing uid_map fails"
          : `${aa}: not restricted`,
      basis: "probe",
    });
  }
  checks.push({
    id: "policy",
    title: "policy blocking unprivileged user namespaces",
    verdict: max === 0 || clone === 0 ? "fail" : aa === 1 ? "warn" : "ok",
    detail:
      max === 0 || clone === 0
        ? "blocked"
        : aa === 1
          ? "restricted by AppArmor"
          : `none found${clone === undefined ? " (no kernel.unprivileged_userns_clone on this kernel)" : ""}${aa === undefined ? " (no AppArmor userns restriction)" : ""}`,
    basis: "probe",
  });
  return checks;
}

function runDoctor(io: CliIo, o: { json?: boolean; user?: string }): void {
  const checks = doctorChecks(realDoctorEnv(), { user: o.user });
  const failed = checks.some((c) => c.verdict === "fail");
  if (o.json) io.out(`${JSON.stringify({ ok: !failed, checks }, null, 2)}\n`);
  else {
    const mark: Record<Verdict, string> = { ok: "ok", warn: "WARN", fail: "FAIL", info: "info" };
    io.out(
      formatTable(
        checks.map((c) => [c.title, mark[c.verdict], c.detail]),
        { header: ["CHECK", "VERDICT", "DETAIL"] },
      ),
    );
    const n = (v: Verdict) => checks.filter((c) => c.verdict === v).length;
    io.out(
      `\n${n("ok")} ok, ${n("warn")} warning(s), ${n("fail")} failed; "by kernel version" means judged from the version table, not probed\n`,
    );
  }
  if (failed) process.exitCode = EXIT_REFUSED;
}

/** Adds `doctor` to the program. */
export function registerDoctorCommand(program: Command, io: CliIo): void {
  program
    .command("doctor")
    .description("check what this kernel and system allow for user namespaces and idmapped mounts")
    .option("--json", "print JSON")
    .option("--user <name>", "whose /etc/subuid entries to check (default: you)")
    .addHelpText(
      "after",
      `
Examples:
  $ userns doctor
  $ userns doctor --json | jq '.checks[] | select(.verdict == "fail")'
  $ userns doctor --user alice

Each check has a verdict: ok, info, WARN or FAIL. Features marked "by kernel version"
are judged from the kernel version table, not probed.
Exit codes: 0 no check failed, 1 some check failed, 2 usage.`,
    )
    .action((opts: { json?: boolean; user?: string }) => runDoctor(io, opts));
}
