#!/usr/bin/env node
// userns-bwrap: a bubblewrap-compatible front end. It parses bwrap's command line with fromBwrapArgs and runs the
// sandbox through the library's spawn(). Kept to the few modules it needs: tools start it once per command.
import { closeSync, openSync, writeSync } from "node:fs";
import { constants } from "node:os";
import { BwrapArgsError, fromBwrapArgs } from "../dist/formats/bwrap.js";
import { native } from "../dist/kernel/native.js";
import { spawn } from "../dist/spawn/spawn.js";

const self = process.argv[1] ?? "userns-bwrap";
const VERSION = "0.1.0";
let levelPrefix = false;

function say(level, text) {
  process.stderr.write(`${levelPrefix ? `<${level}>` : ""}bwrap: ${text}\n`);
}

function usage(stream) {
  stream.write(`usage: ${self} [OPTIONS...] [--] COMMAND [ARGS...]

userns-bwrap ${VERSION}: bubblewrap's command line, run by the userns library.

    --help                       Print this help and exit
    --version                    Print the version and exit
    --args FD                    Read more options from FD, each ended by a NUL byte
    --argv0 VALUE                Run COMMAND with argv[0] set to VALUE
    --level-prefix               Prefix messages with <N> as syslog levels
    --unshare-all                Unshare the user (if possible), ipc, pid, net, uts and cgroup (if possible) namespaces
    --share-net                  Keep the caller's network namespace (after --unshare-all or --unshare-net)
    --unshare-user               Make a new user namespace (always done for a caller that is not root)
    --unshare-user-try           Make a new user namespace if the kernel allows it
    --unshare-ipc                Make a new ipc namespace
    --unshare-pid                Make a new pid namespace
    --unshare-net                Make a new network namespace (loopback up)
    --unshare-uts                Make a new uts namespace
    --unshare-cgroup             Make a new cgroup namespace
    --unshare-cgroup-try         Make a new cgroup namespace if the kernel has them
    --userns FD                  Join this user namespace (not with --unshare-user)
    --userns2 FD                 Switch to this user namespace after setup (with --userns)
    --disable-userns             The sandbox cannot make more user namespaces (needs --unshare-user)
    --assert-userns-disabled     Fail unless the sandbox cannot make user namespaces
    --pidns FD                   Join this pid namespace (the parent of a new one with --unshare-pid)
    --uid UID                    The uid inside (needs a user namespace)
    --gid GID                    The gid inside (needs a user namespace)
    --hostname NAME              The hostname inside (needs --unshare-uts)
    --chdir DIR                  Working directory inside
    --clearenv                   Start from an empty environment (PWD is still set)
    --setenv VAR VALUE           Set VAR
    --unsetenv VAR               Remove VAR
    --lock-file DEST             Hold a lock on DEST while the sandbox runs
    --sync-fd FD                 Keep FD open while the sandbox runs
    --perms OCTAL                Mode of what the next option creates (--dir, --tmpfs, --file, --bind-data ...)
    --size BYTES                 Size of the next --tmpfs
    --bind SRC DEST              Bind the host path SRC at DEST
    --bind-try SRC DEST          As --bind, skipped if SRC does not exist
    --dev-bind SRC DEST          As --bind, device nodes usable
    --dev-bind-try SRC DEST      As --dev-bind, skipped if SRC does not exist
    --ro-bind SRC DEST           As --bind, read-only
    --ro-bind-try SRC DEST       As --ro-bind, skipped if SRC does not exist
    --bind-fd FD DEST            Bind the open directory or O_PATH fd FD at DEST
    --ro-bind-fd FD DEST         As --bind-fd, read-only
    --remount-ro DEST            Make the mount at DEST read-only (not its submounts)
    --overlay-src SRC            A lower layer for the next overlay option
    --overlay RWSRC WORKDIR DEST An overlay at DEST writing to RWSRC
    --tmp-overlay DEST           An overlay at DEST whose writes go to a temporary tmpfs
    --ro-overlay DEST            A read-only overlay at DEST
    --exec-label LABEL           SELinux exec label (not supported here)
    --file-label LABEL           SELinux file label (not supported here)
    --proc DEST                  A new procfs at DEST
    --dev DEST                   A minimal /dev at DEST
    --tmpfs DEST                 A new tmpfs at DEST
    --mqueue DEST                A new mqueue at DEST
    --dir DEST                   Make a directory at DEST
    --file FD DEST               Copy FD's data to a new file at DEST
    --bind-data FD DEST          Copy FD's data to a file bound at DEST
    --ro-bind-data FD DEST       As --bind-data, read-only
    --symlink SRC DEST           Make a symlink at DEST pointing to SRC
    --chmod OCTAL PATH           Change the mode of the existing PATH
    --seccomp FD                 Install the seccomp program read from FD (the last one given)
    --add-seccomp-fd FD          Install the seccomp program read from FD (repeatable)
    --block-fd FD                Start COMMAND only when FD has data
    --userns-block-fd FD         Wait on FD for an outside helper to map the user namespace
    --info-fd FD                 Write the sandbox's pid and namespace ids to FD as JSON
    --json-status-fd FD          Write status (pid and namespace ids, then the exit code) to FD as JSON lines
    --new-session                Run COMMAND in a new session (setsid)
    --die-with-parent            Kill the sandbox (SIGKILL) when the caller dies
    --as-pid-1                   Run COMMAND as pid 1 instead of a reaping pid 1 (needs --unshare-pid)
    --cap-add CAP                Keep CAP (or ALL)
    --cap-drop CAP               Drop CAP (or ALL)
`);
}

const NS_NAMES = ["cgroup", "ipc", "mnt", "net", "pid", "uts"];

/** The namespace ids bwrap reports, in its order, from spawn's beforeExec (a type the kernel lacks is left out). */
function namespaceIds(namespaces) {
  return NS_NAMES.filter((ns) => namespaces[ns] !== undefined).map((ns) => [`${ns}-namespace`, namespaces[ns]]);
}

function writeAll(fd, text) {
  try {
    writeSync(fd, text);
  } catch {
    // bwrap ignores a monitoring fd that cannot be written
  }
}

/** A library error as the one line bwrap prints for the same failure. */
function bwrapMessage(err, command) {
  const code = err?.code;
  // The library names the link that is in the way (reason "existing destination is TARGET"), in bwrap's words.
  if (code === "EEXIST" && err.path && /^existing destination is /.test(err.reason ?? ""))
    return `Can't make symlink at ${err.path}: ${err.reason}`;
  const text = (constants.errno[code] !== undefined && errnoText(code)) || err?.message || String(err);
  if (err?.syscall === "execve") return `execvp ${command}: ${text}`;
  if (code === "ENOENT" && err?.path && /bind|source|realpath/i.test(`${err.step} ${err.syscall} ${err.message}`))
    return `Can't find source path ${err.path}: ${text}`;
  return err?.message ?? String(err);
}

function errnoText(code) {
  const texts = {
    ENOENT: "No such file or directory",
    EACCES: "Permission denied",
    EPERM: "Operation not permitted",
    EEXIST: "File exists",
    ENOTDIR: "Not a directory",
    EISDIR: "Is a directory",
    EINVAL: "Invalid argument",
    EBADF: "Bad file descriptor",
    ENOSPC: "No space left on device",
    EROFS: "Read-only file system",
    ENOEXEC: "Exec format error",
    EAGAIN: "Resource temporarily unavailable",
  };
  return texts[code];
}

async function main(argv) {
  let parsed;
  try {
    parsed = fromBwrapArgs(argv);
  } catch (err) {
    if (err instanceof BwrapArgsError) {
      levelPrefix = err.levelPrefix;
      if (err.usage) usage(process.stderr);
      else process.stderr.write(`${levelPrefix ? "<3>" : ""}${err.bwrapText}\n`);
      return err.exitStatus;
    }
    throw err;
  }
  if (parsed.kind === "help") {
    usage(process.stdout);
    return 0;
  }
  if (parsed.kind === "version") {
    process.stdout.write(`userns-bwrap ${VERSION} (bubblewrap-compatible)\n`);
    return 0;
  }
  const { file, args, options, frontEnd } = parsed;
  levelPrefix = frontEnd.levelPrefix;
  for (const w of frontEnd.warnings) say(4, w);
  if (frontEnd.usernsBlockFd !== undefined) {
    say(3, "--userns-block-fd is not supported by userns-bwrap (the library writes the maps itself)");
    return 1;
  }
  if (frontEnd.userns2Fd !== undefined) {
    say(3, "--userns2 is not supported by userns-bwrap");
    return 1;
  }
  if (frontEnd.assertUserNamespacesDisabled && !options.disableUserNamespaces) {
    // The sandbox would see what this process sees: probe whether a user namespace can still be made here.
    const probeOptions = { namespaces: ["user"], stdio: "ignore", ...(options.join ? { join: options.join } : {}) };
    let made = false;
    try {
      const probe = spawn("/bin/true", [], probeOptions);
      made = (await probe).code === 0;
    } catch {
      made = false;
    }
    if (made) {
      say(3, "creation of new user namespaces was not disabled as requested");
      return 1;
    }
  }
  // bwrap holds a read lock on each --lock-file for the sandbox's life; an OFD lock held here (released when this
  // process exits, which is when the sandbox is gone) conflicts with the POSIX locks other processes test with.
  for (const path of frontEnd.lockFiles) {
    let fd;
    try {
      fd = openSync(path, "r");
    } catch (err) {
      say(3, `Unable to open lock file ${path}: ${errnoText(err.code) ?? err.message}`);
      return 1;
    }
    lockFds.push(fd);
    try {
      native().ofdReadLock(fd);
    } catch (err) {
      say(3, `Unable to lock file ${path}: ${errnoText(err.code) ?? err.message}`);
      return 1;
    }
  }
  let child;
  // As bwrap: the sandbox's pid and namespace ids go out while it waits just before exec (spawn's beforeExec), so a
  // caller reading --info-fd sees them before the program runs; then --block-fd holds it (spawn's blockFd).
  const announce = (info) => {
    const ids = [["child-pid", info.pid], ...namespaceIds(info.namespaces)];
    if (frontEnd.infoFd !== undefined) {
      writeAll(frontEnd.infoFd, `{\n${ids.map(([k, v]) => `    "${k}": ${v}`).join(",\n")}\n}\n`);
      closeSync(frontEnd.infoFd);
    }
    if (frontEnd.jsonStatusFd !== undefined)
      writeAll(frontEnd.jsonStatusFd, `{ ${ids.map(([k, v]) => `"${k}": ${v}`).join(", ")} }\n`);
  };
  // The waiting sandbox must not hold the monitoring fds (bwrap's child closes them): a reader of --info-fd waits
  // for its end before it writes --block-fd.
  const monitors = [frontEnd.infoFd, frontEnd.jsonStatusFd, frontEnd.blockFd].filter((fd) => fd !== undefined);
  const hold = {
    ...(frontEnd.infoFd !== undefined || frontEnd.jsonStatusFd !== undefined ? { beforeExec: announce } : {}),
    ...(frontEnd.blockFd !== undefined ? { blockFd: frontEnd.blockFd } : {}),
    ...(monitors.length > 0 ? { closeFds: monitors } : {}),
  };
  // Without --chdir bwrap tries the caller's cwd inside the sandbox, then $HOME, then /; spawn checks one cwd, so a
  // chdir failure (before anything was exec'd) is retried with the next one, PWD following.
  const cwds = [options.cwd, ...frontEnd.cwdFallbacks];
  for (let i = 0; ; i++) {
    const cwd = cwds[i];
    try {
      child = spawn(file, args, { ...options, cwd, env: { ...options.env, PWD: cwd }, stdio: "inherit", ...hold });
      // 'spawn' comes once execve succeeded; a failure before it (here: chdir) rejects the handle instead.
      await new Promise((resolve, reject) => {
        child.once("spawn", resolve);
        child.exited.catch(reject);
      });
      break;
    } catch (err) {
      if (err?.step === "chdir" && i + 1 < cwds.length) continue;
      say(3, bwrapMessage(err, file));
      return 1;
    }
  }
  let ppidWatch;
  if (frontEnd.dieWithParent) {
    // bwrap sets PR_SET_PDEATHSIG on itself too; from JS the parent's death shows as a new ppid (re-parenting).
    const first = process.ppid;
    ppidWatch = setInterval(() => {
      if (process.ppid !== first) {
        child.kill("SIGKILL");
        process.exit(137);
      }
    }, 100);
  }
  const forward = (sig) => child.kill(sig);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, forward);
  let status;
  try {
    status = await child;
  } catch (err) {
    say(3, bwrapMessage(err, file));
    return 1;
  } finally {
    if (ppidWatch) clearInterval(ppidWatch);
  }
  const code = status.code ?? 128 + (constants.signals[status.signal] ?? 0);
  if (frontEnd.jsonStatusFd !== undefined) {
    writeAll(frontEnd.jsonStatusFd, `{ "exit-code": ${code} }\n`);
    closeSync(frontEnd.jsonStatusFd);
  }
  return code;
}

const lockFds = [];
process.exitCode = await main(process.argv.slice(2));
for (const fd of lockFds) closeSync(fd);
