/** doctor's verdicts on fake machines: each policy knob, the newuidmap forms, the fs table by kernel version. */
import { describe, expect, it } from "vitest";
import {
  type DoctorEnv,
  doctorChecks,
  firstMountPoints,
  hasFileCap,
  idmapSupportByVersion,
  kernelVersion,
  mountedFsTypes,
} from "../../lib/cli/doctor.js";

function fakeEnv(over: Partial<DoctorEnv> & { files?: Record<string, string> } = {}): DoctorEnv {
  const files: Record<string, string> = {
    "/proc/sys/user/max_user_namespaces": "63000\n",
    "/proc/self/mountinfo":
      "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n23 22 0:5 / /proc rw - proc proc rw\n24 22 0:6 / /run rw - tmpfs tmpfs rw\n",
    "/proc/filesystems": "nodev\tproc\n\text4\nnodev\ttmpfs\n",
    "/etc/passwd": "alice:x:1000:1000::/home/alice:/bin/sh\n",
    "/etc/subuid": "alice:100000:65536\n",
    "/etc/subgid": "alice:100000:65536\n",
    ...over.files,
  };
  return {
    release: () => "6.18.0",
    readFile: (p) => files[p],
    pids: () => ["1", "2", "3"],
    readlink: (p) => (p === "/proc/3/ns/user" ? "user:[4026532000]" : "user:[4026531837]"),
    which: (n) => `/usr/bin/${n}`,
    stat: () => ({ mode: 0o104755, uid: 0 }),
    getcap: () => "",
    nestingBelow: () => 1,
    uid: () => 1000,
    user: () => "alice",
    ...over,
  };
}

const verdict = (env: DoctorEnv, id: string) => doctorChecks(env).find((c) => c.id === id)?.verdict;

describe("doctor verdicts", () => {
  it("a healthy 6.18 machine has no failures", () => {
    const checks = doctorChecks(fakeEnv());
    expect(checks.filter((c) => c.verdict === "fail")).toEqual([]);
    const ns = checks.find((c) => c.id === "max_user_namespaces")!;
    expect(ns.detail).toMatch(/63000 allowed.*2 distinct user namespaces/);
    expect(checks.find((c) => c.id === "nesting")!.detail).toMatch(
      /initial user namespace.*deepest namespace below: 1 level/,
    );
    expect(checks.find((c) => c.id === "idmap-fs:ext4")!.verdict).toBe("ok");
    expect(checks.find((c) => c.id === "idmap-fs:proc")!.verdict).toBe("info");
    expect(checks.find((c) => c.id === "subid")!.detail).toBe("subuid 100000-165535; subgid 100000-165535");
  });

  it("uses the real probe of one mount per filesystem type where it can run, and says so", () => {
    const asked: string[] = [];
    const env = fakeEnv({
      probeIdmap: (point) => {
        asked.push(point);
        return point === "/run" ? { supported: false, detail: "no: refused" } : undefined;
      },
    });
    const checks = doctorChecks(env);
    expect(asked.sort()).toEqual(["/", "/proc", "/run"]);
    const tmpfs = checks.find((c) => c.id === "idmap-fs:tmpfs")!;
    expect(tmpfs).toMatchObject({ verdict: "info", basis: "probe" });
    expect(tmpfs.detail).toBe("no: refused [1 mount]");
    // Where the probe cannot answer, the version table does, and says so.
    expect(checks.find((c) => c.id === "idmap-fs:ext4")).toMatchObject({ verdict: "ok", basis: "kernel-version" });
  });

  it("firstMountPoints unescapes mountinfo's octal escapes", () => {
    expect(firstMountPoints("30 1 0:7 / /mnt/my\\040disk rw - vfat /dev/sdb1 rw\n").get("vfat")).toBe("/mnt/my disk");
  });

  it.each([
    [
      "max_user_namespaces = 0",
      { files: { "/proc/sys/user/max_user_namespaces": "0\n" } },
      "max_user_namespaces",
      "fail",
    ],
    [
      "unprivileged_userns_clone = 0",
      { files: { "/proc/sys/kernel/unprivileged_userns_clone": "0\n" } },
      "unprivileged_userns_clone",
      "fail",
    ],
    [
      "unprivileged_userns_clone = 1",
      { files: { "/proc/sys/kernel/unprivileged_userns_clone": "1\n" } },
      "unprivileged_userns_clone",
      "ok",
    ],
    [
      "AppArmor restriction",
      { files: { "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1\n" } },
      "policy",
      "warn",
    ],
    ["blocked policy summary", { files: { "/proc/sys/kernel/unprivileged_userns_clone": "0\n" } }, "policy", "fail"],
    ["newuidmap missing", { which: () => undefined }, "newuidmap", "warn"],
    [
      "newuidmap neither setuid nor capable",
      { stat: () => ({ mode: 0o100755, uid: 0 }), getcap: () => "" },
      "newuidmap",
      "fail",
    ],
    [
      "newuidmap file capability",
      { stat: () => ({ mode: 0o100755, uid: 0 }), getcap: (p: string) => `${p} cap_setuid=ep\n` },
      "newuidmap",
      "ok",
    ],
    [
      "newgidmap needs cap_setgid, not cap_setuid",
      { stat: () => ({ mode: 0o100755, uid: 0 }), getcap: (p: string) => `${p} cap_setuid=ep\n` },
      "newgidmap",
      "fail",
    ],
    ["setuid but not root-owned", { stat: () => ({ mode: 0o104755, uid: 1000 }) }, "newuidmap", "fail"],
    ["old kernel lacks clone3", { release: () => "5.2.0" }, "clone3", "fail"],
    ["5.11 lacks mount_setattr", { release: () => "5.11.3" }, "mount_setattr", "fail"],
    ["no subuid lines", { files: { "/etc/subuid": "" } }, "subid", "warn"],
    ["overlapping subuid lines", { files: { "/etc/subuid": "alice:100000:65536\nbob:100010:5\n" } }, "subid", "fail"],
  ] as [string, Partial<DoctorEnv> & { files?: Record<string, string> }, string, string][])(
    "%s",
    (_n, over, id, want) => {
      expect(verdict(fakeEnv(over), id)).toBe(want);
    },
  );

  it.each([
    ["/usr/bin/newuidmap cap_setuid=ep", "cap_setuid", true],
    ["/usr/bin/newuidmap = cap_setuid+ep", "cap_setuid", true],
    ["/usr/bin/x cap_chown,cap_setuid=eip", "cap_setuid", true],
    ["/usr/bin/x cap_setuid=p", "cap_setuid", false],
    ["/usr/bin/x cap_setuidx=ep", "cap_setuid", false],
    ["", "cap_setuid", false],
  ] as [string, string, boolean][])("hasFileCap(%j, %s) = %s", (out, cap, want) => {
    expect(hasFileCap(out, cap)).toBe(want);
  });

  it.each([
    ["tmpfs", "6.2.0", false],
    ["tmpfs", "6.3.0", true],
    ["btrfs", "5.14.1", false],
    ["btrfs", "5.15.0", true],
    ["bcachefs", "6.17.0", true],
    ["bcachefs", "6.18.0", false],
    ["fuse.sshfs", "6.12.0", true],
    ["overlay", "6.18.0", false],
    ["nfs", "6.18.0", undefined],
  ] as [string, string, boolean | undefined][])("%s on %s: %s (spec §8.5 by kernel version)", (fs, rel, want) => {
    expect(idmapSupportByVersion(fs, kernelVersion(rel)).supported).toBe(want);
  });

  it("mountedFsTypes counts the type field after ' - '", () => {
    expect([...mountedFsTypes("1 0 0:1 / / rw shared:1 - ext4 /dev/a rw\n2 1 0:2 / /x rw - ext4 /dev/b rw\n")]).toEqual(
      [["ext4", 2]],
    );
  });

  it("checks the native addon when the machine can say: ok with where it came from, fail with the fix", () => {
    expect(doctorChecks(fakeEnv()).find((c) => c.id === "addon")).toBeUndefined();
    const ok = doctorChecks(
      fakeEnv({ addon: () => ({ ok: true, detail: "loaded (prebuilt): /x/userns.glibc.node" }) }),
    );
    expect(ok.find((c) => c.id === "addon")).toMatchObject({
      verdict: "ok",
      detail: expect.stringContaining("prebuilt"),
    });
    const bad = doctorChecks(
      fakeEnv({ addon: () => ({ ok: false, detail: "no usable binary ... run `npm rebuild userns`" }) }),
    );
    expect(bad.find((c) => c.id === "addon")).toMatchObject({ verdict: "fail" });
    expect(bad.find((c) => c.id === "addon")!.detail).toContain("npm rebuild userns");
  });
});
