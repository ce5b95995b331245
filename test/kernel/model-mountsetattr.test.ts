import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { AT, MOUNT_ATTR, type MountSetattrCall, MS, mountSetattr, type UsernsFdTarget } from "../../lib/model/index.js";
import { describeKernel } from "../helpers/kernel.js";

// Each probe is run through mount_setattr(2) for real (a Python probe inside
// `unshare --mount --propagation private`) and through the model's
// mountSetattr orchestrator; the errno must agree (spec §8.2, rules 41–51).
// The probe stays in Python on purpose: it hands the kernel malformed raw
// arguments (usize 31/40/4097, a nonzero struct tail, a userns fd above
// INT_MAX, a closed fd) that the addon's mountSetattr binding cannot express,
// since it always passes a well-formed 32-byte mount_attr.
interface Probe {
  id: string;
  target?: "clone" | "attached" | "subdir" | "missing" | "idmapped" | "ramfs";
  userns?: "new" | "new-nomap" | "init" | "mntns" | "file" | "closed" | "intmax";
  flags?: number;
  size?: number;
  tail?: boolean;
  attr_set?: number;
  attr_clr?: number;
  propagation?: number;
}
const probes: Probe[] = [
  { id: "ok" },
  { id: "attached (41)", target: "attached" },
  { id: "already idmapped (42)", target: "idmapped" },
  { id: "init userns (43)", userns: "init" },
  { id: "mount-ns fd (43)", userns: "mntns" },
  { id: "regular file (43)", userns: "file" },
  { id: "closed fd (43)", userns: "closed" },
  { id: "fd > INT_MAX (43)", userns: "intmax" },
  { id: "maps not written (44)", userns: "new-nomap" },
  { id: "ramfs (47)", target: "ramfs" },
  { id: "unknown flags (49)", flags: AT.EMPTY_PATH | 0x1 },
  { id: "usize 31 (49)", size: 31 },
  { id: "usize 4097 (49)", size: 4097 },
  { id: "nonzero tail (49)", size: 40, tail: true },
  { id: "zero tail is fine", size: 40 },
  { id: "two propagation types (49)", propagation: MS.PRIVATE | MS.SHARED },
  { id: "unknown attr bit (49)", attr_set: MOUNT_ATTR.IDMAP | 0x400 },
  { id: "atime without _ATIME clear (49)", attr_set: MOUNT_ATTR.NOATIME },
  { id: "partial _ATIME clear (49)", attr_set: 0, attr_clr: 0x10 },
  { id: "all-zero attr, missing path (50)", target: "missing", attr_set: 0 },
  { id: "attr_clr IDMAP (51)", attr_clr: MOUNT_ATTR.IDMAP },
  { id: "a subdirectory, not a mount root", target: "subdir" },
  { id: "missing path", target: "missing" },
  { id: "RDONLY on an attached mount is fine", target: "attached", attr_set: MOUNT_ATTR.RDONLY },
  { id: "bad usernsfd ignored without IDMAP", attr_set: MOUNT_ATTR.NOSUID, userns: "closed" },
];

function modelFor(p: Probe): MountSetattrCall {
  const target = p.target ?? "clone";
  const u = p.userns ?? "new";
  const fd: Record<string, UsernsFdTarget> = {
    new: { kind: "userns", uidMapWritten: true, gidMapWritten: true },
    "new-nomap": { kind: "userns", uidMapWritten: false, gidMapWritten: false },
    init: { kind: "userns", init: true, id: "init", uidMapWritten: true, gidMapWritten: true },
    mntns: { kind: "nsfs", nstype: "mnt" },
    file: { kind: "file" },
    closed: { kind: "closed" },
    intmax: { kind: "closed" },
  };
  const pathless = target === "subdir" || target === "missing";
  return {
    flags: p.flags ?? (pathless ? 0 : AT.EMPTY_PATH),
    size: p.size ?? 32,
    tailNonzero: p.tail ?? false,
    attrSet: p.attr_set ?? MOUNT_ATTR.IDMAP,
    attrClr: p.attr_clr ?? 0,
    propagation: p.propagation ?? 0,
    usernsFdNumber: u === "intmax" ? 2 ** 31 : 5,
    usernsFd: fd[u],
    lookupErrno: target === "missing" ? "ENOENT" : undefined,
    isMountRoot: target !== "subdir",
    mounts: [
      {
        fsType: target === "ramfs" ? "ramfs" : "tmpfs",
        detached: target !== "attached",
        idmapped: target === "idmapped",
      },
    ],
  };
}

describeKernel("mount_setattr check order against the kernel (spec §8.2)", () => {
  const got = new Map<string, string | null>();
  it("the probe answers every case", () => {
    const dir = mkdtempSync(join(tmpdir(), "userns-setattr-"));
    try {
      const r = spawnSync(
        "unshare",
        ["--mount", "--propagation", "private", "python3", join(import.meta.dirname, "mount-setattr-probe.py"), dir],
        { input: probes.map((p) => JSON.stringify(p)).join("\n"), encoding: "utf8", timeout: 60_000 },
      );
      if (r.status !== 0) throw new Error(`probe failed (${r.status}): ${r.stderr}`);
      for (const l of r.stdout.trim().split("\n")) {
        const o = JSON.parse(l) as { id: string; errno: string | null };
        got.set(o.id, o.errno);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(got.size).toBe(probes.length);
  });
  it.each(probes.map((p) => [p.id, p] as const))("%s", (id, p) => {
    const m = mountSetattr(modelFor(p));
    expect(m.ok ? null : m.errno).toBe(got.get(id));
  });
});
