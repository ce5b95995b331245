/**
 * The mount-case runner process. Started by runMountCasesKernel under
 * `unshare --mount --propagation private`, so every mount it makes is in
 * its own namespace and vanishes when it exits. Reads cases as JSON lines
 * on stdin, writes results as JSON lines on stdout, in order.
 */
import { readFileSync, readlinkSync } from "node:fs";
import { checkMountCase, type MountCase, makeWorkspace, removeWorkspace, runMountCaseHere } from "./cases.js";

function privateMountNs(): boolean {
  // Refuse to mount anything in the initial mount namespace: the host's.
  // `unshare` execs us in place, so our parent is whoever asked for the run.
  try {
    return readlinkSync("/proc/self/ns/mnt") !== readlinkSync(`/proc/${process.ppid}/ns/mnt`);
  } catch {
    return false;
  }
}

if (!privateMountNs()) {
  process.stderr.write("runner-main: not in a private mount namespace; refusing to mount\n");
  process.exit(3);
}
const input = readFileSync(0, "utf8");
// The directory comes from runMountCasesKernel, which removes it from its own
// (the host's) side after we exit, however we exit.
const ws = makeWorkspace(process.argv[2]);
try {
  for (const line of input.split("\n")) {
    if (line.trim() === "") continue;
    const c = JSON.parse(line) as MountCase;
    const bad = checkMountCase(c);
    // A malformed case gets the model's input result, field for field (checkMountCase uses the model's schema).
    const r = bad
      ? { id: c.id ?? null, ok: null, step: null, errno: null, stage: "input", error: bad }
      : runMountCaseHere(c, ws);
    process.stdout.write(`${JSON.stringify(r)}\n`);
  }
} finally {
  removeWorkspace(ws);
}
