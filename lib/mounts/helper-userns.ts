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
 * "deny\n"), map texts the kernel is meant to judge, and a namespace created
 * by another uid (`owner`). The holder child and the writer are the child
 * layer's (lib/child); a map given as an IdMap is checked by the model for a
 * privileged writer first, as UserNamespace does, while map *text* goes to
 * the kernel as written, so its errno shows at the step that failed.
 */
import { startUserNsHolder } from "../child/holder.js";
import { writeStep } from "../child/maps.js";
import { abortChild, resumeChild } from "../child/steps.js";
import { prepareMap } from "../child/validate.js";
import { native } from "../kernel/native.js";
import { IdMap } from "../model/idmap.js";

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
  const { held, announces } = startUserNsHolder(owner ? { owner } : {});
  let nsfd = -1;
  try {
    if (announces) resumeChild(held, "creating a user namespace to carry an idmap", false);
    // One file at a time through writeStep: raw text may hold what the batch writer refuses (a NUL byte).
    if (opts.setgroups != null) writeStep(held.pid, "setgroups", opts.setgroups);
    if (opts.uidMap != null) writeStep(held.pid, "uid_map", mapText("uid", opts.uidMap, opts.setgroups));
    if (opts.gidMap != null) writeStep(held.pid, "gid_map", mapText("gid", opts.gidMap, opts.setgroups));
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

/** The text to write: an IdMap checked by the model (privileged writer, this process's maps), text as given. */
function mapText(kind: "uid" | "gid", map: IdMap | string, setgroups: string | null | undefined): string {
  if (!(map instanceof IdMap)) return map;
  return prepareMap(kind, map, setgroups === "deny" ? "deny" : undefined, { writer: "privileged" }).text;
}
