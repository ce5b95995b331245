/**
 * Holder children: short-lived children in exit mode that sit in a namespace
 * (blocked at a wait step) while this process works on it from outside,
 * e.g. writes its maps or opens /proc/PID/ns/user, and are then released or
 * killed. UserNamespace, spawn's helpers and the mount helpers all start them
 * here, with the same step lists.
 */

import { UsernsError } from "../errors.js";
import { CLONE_NEW } from "../kernel/nsfs.js";
import { abortChild, type ChildStep, type HeldChild, resumeChild, startChild } from "./steps.js";

/** Starts a child in exit mode (no program: it exits 0 after its steps) running `steps`. */
export function startHolder(steps: readonly ChildStep[], cloneFlags = 0): HeldChild {
  return startChild({ cloneFlags, path: "/", argv: [], envp: [], fdSrc: [], steps, exitMode: true });
}

/**
 * The steps that make a child the creator a nested namespace needs after joining a user namespace: that
 * namespace's ids (setresgid, setresuid), and dumpable again, since the uid change made it non-dumpable, which
 * would make its /proc files root-owned and unwritable for the map writer.
 */
export function becomeCreatorSteps(ids: { readonly uid: number; readonly gid: number }): ChildStep[] {
  return [
    { op: "setgid", gid: ids.gid },
    { op: "setuid", uid: ids.uid },
    { op: "dumpable", value: 1 },
  ];
}

/** Where {@link startUserNsHolder} creates the namespace. */
export interface UserNsHolderOptions {
  /** Inside this held user namespace (an nsfs fd), as `creator` (root there if mapped, else its lowest mapped ids). */
  readonly parent?: { readonly fd: number; readonly creator: { readonly uid: number; readonly gid: number } };
  /** In this process's namespace, but created by this uid/gid (no supplementary groups), so that user owns it. */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

/**
 * Starts a holder in a new user namespace, blocked until released. Without options the child is cloned straight
 * into the new namespace; with `parent` or `owner` it first changes namespace or ids and then unshares, and tells
 * us when the namespace exists: `announces` is then true and the caller must `resumeChild(held, what, false)`
 * before touching the child's /proc files.
 */
export function startUserNsHolder(opts: UserNsHolderOptions = {}): { held: HeldChild; announces: boolean } {
  const unshareAndWait: ChildStep[] = [
    { op: "unshare", flags: CLONE_NEW.user },
    { op: "wait", notify: true },
  ];
  if (opts.parent) {
    const steps: ChildStep[] = [
      { op: "join", fd: opts.parent.fd, nstype: CLONE_NEW.user, label: "join parent" },
      ...becomeCreatorSteps(opts.parent.creator),
      ...unshareAndWait,
    ];
    return { held: startHolder(steps), announces: true };
  }
  if (opts.owner) {
    const steps: ChildStep[] = [
      { op: "setgroups", groups: [] },
      { op: "setgid", gid: opts.owner.gid },
      { op: "setuid", uid: opts.owner.uid },
      ...unshareAndWait,
    ];
    return { held: startHolder(steps), announces: true };
  }
  return { held: startHolder([{ op: "wait", notify: false }], CLONE_NEW.user), announces: false };
}

/** Starts a holder that joins the user namespace behind `fd` and tells us once it is there (for reading from inside). */
export function startJoinedHolder(fd: number): HeldChild {
  return startHolder([
    { op: "join", fd, nstype: CLONE_NEW.user, label: "join user" },
    { op: "wait", notify: true },
  ]);
}

/**
 * Runs a helper child to completion: its steps, then exit 0. Used for work
 * that must happen inside another namespace (writing a nested namespace's
 * maps from its parent, reading maps from inside).
 */
export function runHelper(steps: readonly ChildStep[], what: string): void {
  const child = startHolder(steps);
  try {
    for (;;) {
      const r = resumeChild(child, what);
      if (r.kind === "exit") {
        if (r.code !== 0)
          throw new UsernsError(what, {
            code: "ERR_USERNS_HELPER",
            reason: `helper exited with ${r.code ?? `signal ${r.signal}`}`,
          });
        return;
      }
      if (r.kind === "exec")
        throw new UsernsError(what, { code: "ERR_USERNS_HELPER", reason: "helper did not run in exit mode" });
    }
  } finally {
    abortChild(child);
  }
}
