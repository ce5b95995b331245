/**
 * task_dump_owner (spec §2.6, rule 59) against the kernel: when the process
 * acting as root of P changed its uid (setresuid(0) inside P) and did not make
 * itself dumpable again, the child it creates is non-dumpable too, so the
 * child's /proc files belong to global root, which P (mapping 0 → 100000)
 * does not map: P's root can no longer open the child's uid_map (EACCES).
 */
import { expect, it } from "vitest";
import {
  cred,
  FULL_CAPS,
  IdMap,
  INIT_USER_NS,
  procFileMayWrite,
  taskDumpOwner,
  type UserNs,
} from "../../lib/model/index.js";
import { runMapCasesOnKernel } from "../../lib/verify/index.js";
import { describeKernel } from "../helpers/kernel.js";

const P: UserNs = {
  ...INIT_USER_NS,
  id: 1,
  parent: INIT_USER_NS,
  level: 1,
  uidMap: IdMap.of([0, 100000, 65536]),
  gidMap: IdMap.of([0, 100000, 65536]),
};
const pRoot = cred(P, 100000, 100000, FULL_CAPS);

async function kernelStage(nondumpable: boolean): Promise<unknown> {
  const c = { id: "d", parent: "0 100000 65536", lines: "0 0 10", writer: "privileged" };
  const [r] = await runMapCasesOnKernel([c], { nondumpableParents: nondumpable });
  return [r!.stage, r!.errno];
}

describeKernel("task_dump_owner decides who may open /proc/CHILD/uid_map", () => {
  it.each([
    ["dumpable child: owned by its euid, P's root opens it", true],
    ["non-dumpable child: owned by global root, EACCES for P's root", false],
  ])("%s", async (_n, dumpable) => {
    // The child's mm was created by exec in the initial namespace (mm->user_ns = init).
    const owner = taskDumpOwner({ euid: 100000, egid: 100000, dumpable, mmUserNs: INIT_USER_NS });
    const predicted = procFileMayWrite(pRoot, owner.uid, owner.gid) ? ["write", null] : ["open", "EACCES"];
    expect(await kernelStage(!dumpable)).toEqual(predicted);
  });
});
