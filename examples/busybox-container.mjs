#!/usr/bin/env node
// A busybox container in a few lines: its own user, mount, pid, uts, ipc and network
// namespaces; a busybox-static root filesystem; hostname, /proc, a minimal /dev, the shell as
// pid 1, every capability dropped. It runs one shell command inside and prints its output.
//
//   node examples/busybox-container.mjs ['shell command']
//
// As root, the container's ids are 100000-165535 on the host and its root filesystem is an
// idmapped mount through a held user namespace with the same maps: files owned by root on
// disk show as owned by root inside (on-disk 0 -> host 100000 -> container 0), and nothing on
// disk is chowned. Unprivileged, the ids come from your /etc/subuid and /etc/subgid ranges
// through newuidmap/newgidmap, and the root filesystem is a plain bind: an unprivileged user
// cannot idmap a host mount (that needs CAP_SYS_ADMIN in the initial user namespace); your own
// uid is the container's root, so the files you own show as root's there.
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { parseSubid, rangesFor, spawn, UserNamespace } from "userns";

const command =
  process.argv[2] ??
  'echo "hello from $(hostname)"; id; echo "pid $$"; stat -c "%u:%g %n" /bin/busybox; grep CapEff /proc/self/status';

// The root filesystem: busybox-static (Debian's busybox-static) and a link per applet.
function buildRootfs() {
  const dir = mkdtempSync(join(tmpdir(), "userns-busybox-"));
  const root = join(dir, "rootfs");
  for (const d of ["bin", "etc", "proc", "dev", "tmp", "root"]) mkdirSync(join(root, d), { recursive: true });
  const busybox = execFileSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).trim();
  copyFileSync(busybox, join(root, "bin", "busybox"));
  chmodSync(join(root, "bin", "busybox"), 0o755);
  for (const applet of execFileSync(busybox, ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean))
    if (applet !== "busybox") symlinkSync("busybox", join(root, "bin", applet));
  writeFileSync(join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(root, "etc", "group"), "root:x:0:\n");
  chmodSync(dir, 0o755);
  return { dir, root };
}

// The container's ids: a range of 65536 ids, as root from 100000, else from the subid files.
function idMaps() {
  if (process.geteuid() === 0) return { uidMap: "0 100000 65536", gidMap: "0 100000 65536" };
  const me = userInfo();
  const line = (file, own) => {
    const [r] = rangesFor(parseSubid(readFileSync(file, "utf8")).entries, { name: me.username, uid: me.uid });
    if (r === undefined) throw new Error(`no range for ${me.username} in ${file}`);
    // Your own id is the container's root; the subordinate range follows it.
    return `0 ${own} 1\n1 ${r.start} ${Math.min(r.count, 65535)}`;
  };
  return { uidMap: line("/etc/subuid", me.uid), gidMap: line("/etc/subgid", me.gid) };
}

const { dir, root } = buildRootfs();
const maps = idMaps();
let held;
try {
  let rootfs;
  if (process.geteuid() === 0) {
    held = await UserNamespace.create(maps);
    rootfs = { op: "idmappedBind", source: root, dest: "/", userns: held };
  } else {
    rootfs = { op: "bind", source: root, dest: "/" };
  }
  const child = spawn("/bin/sh", ["-c", command], {
    namespaces: ["user", "mount", "pid", "uts", "ipc", "net"],
    ...maps,
    uid: 0,
    gid: 0,
    filesystem: [rootfs, { op: "proc", dest: "/proc" }, { op: "dev", dest: "/dev" }, { op: "tmpfs", dest: "/tmp" }],
    hostname: "busybox",
    init: "program", // the shell is pid 1
    capabilities: [], // none at all
    noNewPrivileges: true,
    env: { PATH: "/bin", HOME: "/root" },
    cwd: "/",
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  const closed = new Promise((r) => child.once("close", r));
  const { code, signal } = await child;
  await closed;
  process.stdout.write(out);
  process.exitCode = code ?? 128;
  if (signal) console.error(`killed by ${signal}`);
} finally {
  held?.close();
  rmSync(dir, { recursive: true, force: true });
}
