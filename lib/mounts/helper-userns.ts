/**
 * A user namespace made only to carry an idmap, for experiments: a holder
 * child (spawn's child machinery) sits in a new user namespace and waits;
 * this process writes setgroups, uid_map and gid_map as raw text, opens
 * /proc/PID/ns/user and kills the holder, keeping the nsfs fd, which keeps
 * the namespace alive.
 *
 * `UserNamespace.create` is the general, checked version (idmapMount uses
 * it). This one stays for the §2 case runner and the probes, which need what
 * UserNamespace deliberately refuses: arbitrary setgroups text ("nope",
 * "deny\n"), map texts the kernel is meant to judge (no model check first,
 * so the kernel's errno shows at the step that failed), and a namespace
 * created by another uid (`owner`).
 */
import { native } from "../kernel/native.js";
import { CLONE_NEW } from "../kernel/nsfs.js";
import type { IdMap } from "../model/idmap.js";
import { writeStep } from "../child/maps.js";
import { abortChild, resumeChild, startChild } from "../child/steps.js";

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

/** Creates a user namespace with the given maps (written by the caller, who must be privileged over it). */
export function createHelperUserns(opts: HelperUsernsOptions): HelperUserns {
  const b = native();
  const owner = opts.owner;
  // Without an owner the child is cloned straight into the new namespace;
  // with one it first becomes that user (no groups), so the user owns it.
  const held = startChild({
    cloneFlags: owner ? 0 : CLONE_NEW.user,
    path: "/",
    argv: [],
    envp: [],
    fdSrc: [],
    steps: owner
      ? [
          { op: "setgroups", groups: [] },
          { op: "setgid", gid: owner.gid },
          { op: "setuid", uid: owner.uid },
          { op: "unshare", flags: CLONE_NEW.user },
          { op: "wait", notify: true },
        ]
      : [{ op: "wait", notify: false }],
    exitMode: true,
  });
  let nsfd = -1;
  try {
    if (owner) resumeChild(held, "creating a user namespace to carry an idmap", false);
    if (opts.setgroups != null) writeStep(held.pid, "setgroups", opts.setgroups);
    if (opts.uidMap != null) writeStep(held.pid, "uid_map", opts.uidMap.toString());
    if (opts.gidMap != null) writeStep(held.pid, "gid_map", opts.gidMap.toString());
    nsfd = b.openNs(`/proc/${held.pid}/ns/user`);
  } finally {
    abortChild(held);
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
