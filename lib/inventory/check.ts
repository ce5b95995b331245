/**
 * `--check`: the parent's view of each namespace's maps, which the inventory
 * takes from the model's readback rules, against what a reader really in
 * the parent namespace gets from /proc (a `cat` the library spawns joined to
 * the parent; for a namespace no process is in, a helper child joins it
 * first so there is a /proc/PID to read).
 */
import { readFileSync } from "node:fs";
import { abortChild, type HeldChild, resumeChild, startChild } from "../child/steps.js";
import { native } from "../kernel/native.js";
import { CLONE_NEW } from "../kernel/nsfs.js";
import { formatProcMap } from "../model/readback.js";
import { spawn } from "../spawn/spawn.js";
import type { UserNamespaceEntry, UserNamespaceInventory } from "./inventory.js";
import { placePath } from "./scan.js";

/** One namespace's check. */
export interface NamespaceCheck {
  readonly ino: bigint;
  /** "agree", "disagree", or "skipped" (no visible parent, the parent is this process's own namespace, or no way in). */
  readonly result: "agree" | "disagree" | "skipped";
  readonly expected?: string;
  readonly actual?: string;
  readonly reason?: string;
}

async function catIn(parentFd: number, pid: number): Promise<string> {
  const child = spawn("/bin/cat", [`/proc/${pid}/uid_map`, `/proc/${pid}/gid_map`], {
    join: parentFd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c: number | null) => resolve(c));
  });
  if (code !== 0) throw new Error(`cat exited ${code}: ${err.trim()}`);
  return out;
}

function openOf(e: UserNamespaceEntry, ino: bigint): number | undefined {
  const b = native();
  const tries = e.pids.map((p) => `/proc/${p}/ns/user`);
  for (const h of e.heldBy) if (h.kind === "fd" || h.kind === "mount") tries.push(placePath("user", h));
  for (const t of tries) {
    try {
      const fd = b.openNs(t);
      if (b.nsIdentity(fd).ino === ino) return fd;
      b.close(fd);
    } catch {
      // gone
    }
  }
  return undefined;
}

/** Checks every namespace whose parent is visible and not this process's own namespace. */
export async function checkInventory(inv: UserNamespaceInventory): Promise<NamespaceCheck[]> {
  const b = native();
  const byIno = new Map(inv.namespaces.map((e) => [e.ino, e]));
  const out: NamespaceCheck[] = [];
  for (const e of inv.namespaces) {
    const parent = e.parent === null ? undefined : byIno.get(e.parent.ino);
    if (parent === undefined || e.parentView === undefined) {
      out.push({ ino: e.ino, result: "skipped", reason: "no visible parent" });
      continue;
    }
    const expected = formatProcMap(e.parentView.uidMap) + formatProcMap(e.parentView.gidMap);
    // A reader in the parent: the parent must be enterable, through one of its processes.
    const pfd = parent.current ? undefined : openOf(parent, parent.ino);
    if (!parent.current && pfd === undefined) {
      out.push({ ino: e.ino, result: "skipped", reason: "no process in the parent namespace to open it through" });
      continue;
    }
    let helper: HeldChild | undefined;
    try {
      let pid = e.pids[0];
      let nsfd: number | undefined;
      if (pid === undefined) {
        nsfd = openOf(e, e.ino);
        if (nsfd === undefined) {
          out.push({ ino: e.ino, result: "skipped", reason: "no longer reachable" });
          continue;
        }
      }
      if (pid === undefined && nsfd !== undefined) {
        helper = startChild({
          cloneFlags: 0,
          path: "/",
          argv: [],
          envp: [],
          fdSrc: [],
          steps: [
            { op: "join", fd: nsfd, nstype: CLONE_NEW.user, label: "join user" },
            { op: "wait", notify: true },
          ],
          exitMode: true,
        });
        resumeChild(helper, "holding a process in the namespace for --check", false);
        pid = helper.pid;
        b.close(nsfd);
      }
      const actual =
        pfd === undefined
          ? readFileSync(`/proc/${pid}/uid_map`, "utf8") + readFileSync(`/proc/${pid}/gid_map`, "utf8")
          : await catIn(pfd, pid!);
      out.push({ ino: e.ino, result: actual === expected ? "agree" : "disagree", expected, actual });
    } catch (err) {
      out.push({ ino: e.ino, result: "skipped", reason: (err as Error).message });
    } finally {
      if (helper) abortChild(helper);
      if (pfd !== undefined) b.close(pfd);
    }
  }
  return out;
}
