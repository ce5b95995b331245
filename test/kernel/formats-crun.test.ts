/**
 * Direction check against the real tool: crun's `idmap=uids=…;gids=…` mount
 * option. A minimal OCI bundle (busybox rootfs, the container's user
 * namespace 0 → 100000 for uids and 0 → 200000 for gids) bind-mounts a
 * tmpfs holding files owned by on-disk ids 0, 1, 5 and 1000 with the
 * option; busybox `stat` inside the container must show what our
 * crun-mount parser and the model (statThroughMount: mount idmap, then the
 * container's namespace) predict, and not what the swapped reading would.
 *
 * Everything runs in a private mount namespace made for the test (`unshare
 * --mount --propagation private`): the tmpfs, an empty tmpfs over
 * /sys/fs/cgroup (so crun sees no cgroup hierarchy to refuse, and
 * `--cgroup-manager=disabled` makes it create none) and the container's
 * mounts never reach the host. crun's state lives under a temporary
 * `--root`; the container is deleted and the bundle removed afterwards.
 *
 * Outside CI the tests skip, with the reason, when crun or busybox is
 * missing; under CI they run (.ci/run installs both) and fail instead.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseCrunMount } from "../../lib/formats/crun.js";
import { parseOciMount } from "../../lib/formats/json.js";
import { IdMap } from "../../lib/model/idmap.js";
import { type MountIdmap, statThroughMount, type UidGidMaps } from "../../lib/model/idmapped.js";
import { kernelSkipReason } from "../helpers/kernel.js";

type Version = [number, number, number];
interface OciIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}
interface Owner {
  uid: number;
  gid: number;
}

const DISK_IDS = [0, 1, 5, 1000] as const;
const USERNS: { uid: OciIdMapping[]; gid: OciIdMapping[] } = {
  uid: [{ containerID: 0, hostID: 100000, size: 65536 }],
  gid: [{ containerID: 0, hostID: 200000, size: 65536 }],
};

function which(cmd: string): string | undefined {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** A busybox that runs in a bare rootfs: statically linked (ldd refuses it). */
function staticBusybox(): string | undefined {
  const p = which("busybox");
  return p !== undefined && spawnSync("ldd", [p], { encoding: "utf8" }).status === 1 ? p : undefined;
}

function crunVersion(): Version | undefined {
  const r = spawnSync("crun", ["--version"], { encoding: "utf8" });
  const m = /crun version (\d+)\.(\d+)(?:\.(\d+))?/.exec(r.stdout ?? "");
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
}

function atLeast(v: Version, major: number, minor: number): boolean {
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

/** The container's namespace in the model's terms (installed maps: first = inside, lowerFirst = outside). */
function nsMaps(m: { uid: OciIdMapping[]; gid: OciIdMapping[] }): UidGidMaps {
  const conv = (l: OciIdMapping[]) =>
    IdMap.from(l.map((e) => ({ first: e.containerID, lowerFirst: e.hostID, count: e.size })));
  return { uid: conv(m.uid), gid: conv(m.gid) };
}

/** What stat shows for each on-disk id, as the model predicts it. */
function predict(idmap: MountIdmap, caller: "init" | UidGidMaps): Record<string, Owner> {
  const out: Record<string, Owner> = {};
  for (const id of DISK_IDS) out[`f${id}`] = statThroughMount(idmap, "init", { uid: id, gid: id }, caller);
  return out;
}

/** Our reading of the option as a mount idmap (a kind left out maps nothing, as crun leaves that map empty). */
function oursAsIdmap(option: string, container?: UidGidMaps): UidGidMaps {
  const ms = parseCrunMount(option, container ? { containerMaps: container } : {});
  return { uid: ms.uid ?? IdMap.from([]), gid: ms.gid ?? IdMap.from([]) };
}

/** The other reading of the triples (host-fs-len), to show the observation tells them apart. */
function swapped(m: UidGidMaps): UidGidMaps {
  const sw = (map: IdMap) =>
    IdMap.from(map.extents.map((e) => ({ first: e.lowerFirst, lowerFirst: e.first, count: e.count })));
  return { uid: sw(m.uid), gid: sw(m.gid) };
}

/** The environment for crun: ours, minus the sanitizer runtime test:sanitize preloads (crun is not ours to check). */
function toolEnv(dir: string): NodeJS.ProcessEnv {
  const { LD_PRELOAD: _p, ASAN_OPTIONS: _a, UBSAN_OPTIONS: _u, ...env } = process.env;
  return { ...env, D: dir };
}

interface RunResult {
  code: number | null;
  out: string;
  err: string;
  seen: Record<string, Owner>;
}

/**
 * Runs `stat` on the files in a container with `/data` bind-mounted with
 * `option` (and `mountFields` added to that mount object); `userns` gives
 * the container's uid/gid mappings, or none.
 */
function runCrun(
  option: string,
  userns?: { uid: OciIdMapping[]; gid: OciIdMapping[] },
  mountFields: Record<string, unknown> = {},
): RunResult {
  const dir = mkdtempSync(join(tmpdir(), "userns-crun-"));
  try {
    // The container's root (host 100000) must reach the rootfs.
    chmodSync(dir, 0o755);
    const rootfs = join(dir, "rootfs");
    for (const d of ["bin", "data", "dev", "proc"]) mkdirSync(join(rootfs, d), { recursive: true });
    copyFileSync(staticBusybox()!, join(rootfs, "bin", "busybox"));
    chmodSync(join(rootfs, "bin", "busybox"), 0o755);
    for (const l of ["sh", "stat"]) symlinkSync("busybox", join(rootfs, "bin", l));
    mkdirSync(join(dir, "src"));
    mkdirSync(join(dir, "state"));
    const namespaces = [{ type: "mount" }, ...(userns ? [{ type: "user" }] : [])];
    const config = {
      ociVersion: "1.0.0",
      process: {
        terminal: false,
        user: { uid: 0, gid: 0 },
        args: ["/bin/sh", "-c", "cd /data && stat -c '%u %g %n' *"],
        env: ["PATH=/bin"],
        cwd: "/",
      },
      root: { path: "rootfs" },
      mounts: [
        { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "mode=755"] },
        { destination: "/data", type: "bind", source: join(dir, "src"), options: ["bind", option], ...mountFields },
      ],
      linux: {
        ...(userns ? { uidMappings: userns.uid, gidMappings: userns.gid } : {}),
        namespaces,
      },
    };
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    const files = DISK_IDS.map((id) => `touch "$D/src/f${id}" && chown ${id}:${id} "$D/src/f${id}"`).join(" && ");
    const script = [
      "set -e",
      "mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup",
      'mount -t tmpfs -o mode=755 tmpfs "$D/src"',
      files,
      'rc=0; crun --root "$D/state" --cgroup-manager=disabled run --bundle "$D" userns-crun-test || rc=$?',
      'crun --root "$D/state" delete -f userns-crun-test >/dev/null 2>&1 || true',
      "exit $rc",
    ].join("\n");
    const r = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", script], {
      encoding: "utf8",
      timeout: 20_000,
      env: toolEnv(dir),
    });
    const seen: Record<string, Owner> = {};
    for (const line of (r.stdout ?? "").split("\n")) {
      const m = /^(\d+) (\d+) (\S+)$/.exec(line);
      if (m) seen[m[3]!] = { uid: Number(m[1]), gid: Number(m[2]) };
    }
    return { code: r.status, out: r.stdout ?? "", err: r.stderr ?? "", seen };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function skipReason(): string | undefined {
  const k = kernelSkipReason();
  if (k !== undefined) return k;
  if (process.env.CI) return undefined; // in CI a missing tool is a failure, not a skip
  if (!which("crun")) return "crun is not installed (apt-get install crun)";
  if (!staticBusybox()) return "no statically linked busybox (apt-get install busybox-static)";
  return undefined;
}

const NAME = "formats: crun's idmap= mount option as crun and the kernel apply it";
const reason = skipReason();
(reason === undefined ? describe : describe.skip)(
  reason === undefined ? `[kernel] ${NAME}` : `[kernel] ${NAME} (skipped: ${reason})`,
  () => {
    const v = crunVersion();
    const container = nsMaps(USERNS);

    it("crun and a static busybox are installed", () => {
      expect(v, "crun --version").toBeDefined();
      expect(staticBusybox(), "a statically linked busybox").toBeDefined();
    });

    it("triples are fs-host-len: the on-disk id (first) shows as the second id", () => {
      // Asymmetric and not the identity: each reading predicts different owners.
      const option =
        "idmap=uids=0-100007-1#1-100000-1#5-101000-1#1000-100003-1;gids=0-200009-1#1-200002-1#5-200000-1#1000-201001-1";
      const ours = oursAsIdmap(option);
      const before = readFileSync("/proc/self/mountinfo", "utf8");
      const r = runCrun(option, USERNS);
      expect(readFileSync("/proc/self/mountinfo", "utf8"), "the host's mounts are untouched").toBe(before);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.seen).toEqual(predict(ours, container));
      expect(r.seen).toEqual({
        f0: { uid: 7, gid: 9 },
        f1: { uid: 0, gid: 2 },
        f5: { uid: 1000, gid: 0 },
        f1000: { uid: 3, gid: 1001 },
      });
      expect(r.seen).not.toEqual(predict(swapped(ours), container));
    });

    it("without a container user namespace the option still gives the mount its own namespace", () => {
      const option = "idmap=uids=0-7-1#1000-3-1;gids=0-9-1";
      const r = runCrun(option);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.seen).toEqual(predict(oursAsIdmap(option), "init"));
      expect(r.seen.f0).toEqual({ uid: 7, gid: 9 });
      expect(r.seen.f5).toEqual({ uid: 65534, gid: 65534 });
    });

    it("@ makes the second id a container id, translated through the container's map", () => {
      const option = "idmap=uids=@0-7-1#@1-0-1#5-101000-1#@1000-3-1;gids=@0-9-1#1-200002-1#@5-0-1#@1000-1001-1";
      const ours = oursAsIdmap(option, container);
      expect(ours.uid.toJSON()[0]).toEqual({ first: 0, lowerFirst: 100007, count: 1 });
      const r = runCrun(option, USERNS);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.seen).toEqual(predict(ours, container));
      // The same owners as the absolute form of the first case.
      expect(r.seen.f0).toEqual({ uid: 7, gid: 9 });
    });

    it("@ across container extents: crun before 1.13 picked the extent by the first id", () => {
      // Container map with two extents; @5-1000-1 has 5 in the first and 1000 in the second.
      const two = {
        uid: [
          { containerID: 0, hostID: 100000, size: 1000 },
          { containerID: 1000, hostID: 300000, size: 64536 },
        ],
        gid: USERNS.gid,
      };
      const cmaps = nsMaps(two);
      const option = "idmap=uids=@5-1000-1#@1000-7-1;gids=0-200000-1";
      const ours = oursAsIdmap(option, cmaps);
      expect(ours.uid.toJSON()).toEqual([
        { first: 5, lowerFirst: 300000, count: 1 },
        { first: 1000, lowerFirst: 100007, count: 1 },
      ]);
      const r = runCrun(option, two);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      if (atLeast(v!, 1, 13)) {
        expect(r.seen).toEqual(predict(ours, cmaps));
      } else {
        // crun < 1.13 looked up the container extent holding the FIRST id and
        // added that extent's offset to the second (fixed by crun commit
        // 487ba3a8, "fix checking of relative idmapped mount", in 1.13).
        const old: UidGidMaps = {
          uid: IdMap.from([
            { first: 5, lowerFirst: 1000 + 100000, count: 1 }, // 5 is in extent 0 → +100000
            { first: 1000, lowerFirst: 7 + 299000, count: 1 }, // 1000 is in extent 1 → +299000
          ]),
          gid: ours.gid,
        };
        expect(r.seen).toEqual(predict(old, cmaps));
        expect(r.seen).not.toEqual(predict(ours, cmaps));
      }
    });

    it("bare idmap uses the container's maps", () => {
      const r = runCrun("idmap", USERNS);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.seen).toEqual(predict(oursAsIdmap("idmap", container), container));
      expect(r.seen.f1000).toEqual({ uid: 1000, gid: 1000 });
    });

    it("bare idmap without a container user namespace is refused", () => {
      const r = runCrun("idmap");
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(/mount_setattr/);
      expect(() => parseCrunMount("idmap")).toThrow(/containerMaps/);
    });

    it("ridmap= reads like idmap= (crun 1.9+); older crun ignores it and bind-mounts without an idmap", () => {
      const option = "ridmap=uids=0-100007-1#1000-100003-1;gids=0-200009-1";
      const r = runCrun(option, USERNS);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      if (atLeast(v!, 1, 9)) expect(r.seen).toEqual(predict(oursAsIdmap(option), container));
      else expect(r.seen).toEqual(predict("nop", container));
    });

    it("OCI mount uidMappings (what podman hands crun): containerID is the on-disk id, as our oci-mount reads it", () => {
      const fields = {
        uidMappings: [
          { containerID: 0, hostID: 100007, size: 1 },
          { containerID: 1000, hostID: 100003, size: 1 },
        ],
        gidMappings: [{ containerID: 0, hostID: 200009, size: 1 }],
      };
      const ms = parseOciMount(JSON.stringify({ options: ["bind", "idmap"], ...fields }));
      const ours: UidGidMaps = { uid: ms.uid!, gid: ms.gid! };
      const r = runCrun("idmap", USERNS, fields);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.seen).toEqual(predict(ours, container));
      expect(r.seen.f0).toEqual({ uid: 7, gid: 9 });
      expect(r.seen).not.toEqual(predict(swapped(ours), container));
    });
  },
);
