/**
 * A user namespace made only to carry an idmap: a forked holder calls
 * unshare(CLONE_NEWUSER) and waits; root of the caller's namespace writes
 * setgroups, uid_map and gid_map; we open /proc/PID/ns/user, release the
 * holder and keep the nsfs fd, which keeps the namespace alive.
 *
 * The spawn module's `UserNamespace.create` is the general version; this one
 * is the minimum idmapMount needs when given maps directly.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { UsernsError } from "../errors.js";
import { native } from "../kernel/native.js";
import type { IdMap } from "../model/idmap.js";

/** Anything holding an open user-namespace fd (a spawn UserNamespace, a {@link HelperUserns}). */
export interface UsernsFdHolder {
  /** An open nsfs fd of a user namespace. */
  readonly fd: number;
}

/** A user namespace held by an nsfs fd; `close()` releases it. */
export interface HelperUserns extends UsernsFdHolder {
  close(): void;
}

/** Options for {@link createHelperUserns}. */
export interface HelperUsernsOptions {
  /** uid_map text or map; null/undefined leaves it unwritten. */
  uidMap?: IdMap | string | null;
  /** gid_map text or map; null/undefined leaves it unwritten. */
  gidMap?: IdMap | string | null;
  /** Text written to setgroups before gid_map, e.g. "deny". */
  setgroups?: string | null;
  /** Create the namespace as this uid/gid instead of root (so it owns it). */
  owner?: { uid: number; gid: number };
}

function writeOnce(path: string, text: string, step: string, pid: number): void {
  let fd: number;
  try {
    fd = openSync(path, "w");
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code ?? "EIO";
    throw new UsernsError(`opening ${step} of pid ${pid}`, { code: c, syscall: "open", step, path, cause: e });
  }
  try {
    // One write(2), as the kernel requires for map files.
    writeSync(fd, Buffer.from(text, "utf8"));
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code ?? "EIO";
    throw new UsernsError(`writing ${step} of pid ${pid} (${JSON.stringify(text)})`, {
      code: c,
      syscall: "write",
      step,
      path,
      cause: e,
    });
  } finally {
    closeSync(fd);
  }
}

/** Creates a user namespace with the given maps (written by the caller, who must be privileged over it). */
export function createHelperUserns(opts: HelperUsernsOptions): HelperUserns {
  const b = native();
  const h = b.usernsHolderStart(opts.owner?.uid ?? -1, opts.owner?.gid ?? -1);
  let nsfd = -1;
  try {
    const base = `/proc/${h.pid}`;
    if (opts.setgroups != null) writeOnce(`${base}/setgroups`, opts.setgroups, "setgroups", h.pid);
    if (opts.uidMap != null) writeOnce(`${base}/uid_map`, opts.uidMap.toString(), "uid_map", h.pid);
    if (opts.gidMap != null) writeOnce(`${base}/gid_map`, opts.gidMap.toString(), "gid_map", h.pid);
    nsfd = b.openNs(`${base}/ns/user`);
  } finally {
    b.close(h.fd);
    b.reapChild(h.pid);
  }
  let open = true;
  return {
    fd: nsfd,
    close() {
      if (open) {
        open = false;
        b.close(nsfd);
      }
    },
  };
}
