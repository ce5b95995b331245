/**
 * Issue 5 item 2: a detached idmapped mount handed to spawn, which attaches
 * it inside the child's new mount namespace before exec. The source is a
 * tmpfs made with fsopen/fsmount: detached from birth, it never appears in
 * any mount table this process can see, and the idmapped clone is attached
 * only in the child's private mount namespace.
 */
import { chownSync, closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { native } from "../../lib/kernel/native.js";
import { IdMap } from "../../lib/model/idmap.js";
import { makeVfsgid, makeVfsuid } from "../../lib/model/idmapped.js";
import { idmapMount } from "../../lib/mounts/idmap-mount.js";
import { describeKernel } from "../helpers/kernel.js";
import { hostMountinfo } from "../helpers/mountns.js";
import { run } from "../helpers/spawn.js";

/** A fresh tmpfs as a detached mount fd (fsopen + fsmount), never attached here. */
function detachedTmpfs(): number {
  const b = native();
  const ctx = b.fsopen("tmpfs");
  try {
    b.fsconfigCreate(ctx);
    return b.fsmount(ctx, 0);
  } finally {
    b.close(ctx);
  }
}

describeKernel("spawn attaches a detached idmapped mount in the child's mount namespace", () => {
  // On-disk owner → id seen through the mount (mount direction).
  const uidMap = IdMap.of([0, 100000, 65536]);
  const gidMap = IdMap.of([0, 200000, 65536]);

  it.each([
    [0, 0],
    [1000, 1001],
    [65535, 7],
  ])("a file owned %i:%i on disk: the child's stat equals the model's prediction", async (uid, gid) => {
    const before = hostMountinfo();
    const target = mkdtempSync(join(tmpdir(), "userns-spawn-mount-"));
    let src = -1;
    try {
      src = detachedTmpfs();
      // The detached tmpfs is reachable only through its fd (a magic link).
      const file = `/proc/self/fd/${src}/f`;
      closeSync(openSync(file, "wx"));
      chownSync(file, uid, gid);
      const m = idmapMount(`/proc/self/fd/${src}`, { uidMap, gidMap });
      try {
        expect(m.attachedAt).toBeUndefined();
        const r = await run("/usr/bin/stat", ["-c", "%u:%g", join(target, "f")], {
          namespaces: ["mount"],
          mounts: [{ fd: m.fd, target }],
        });
        const idmap = { uid: uidMap, gid: gidMap };
        const predicted = `${makeVfsuid(idmap, "init", uid)}:${makeVfsgid(idmap, "init", gid)}`;
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
        expect(r.stdout.trim()).toBe(predicted);
        // The mount never reached this (the host's) mount namespace.
        expect(hostMountinfo()).toBe(before);
      } finally {
        m.close();
      }
    } finally {
      if (src >= 0) native().close(src);
      rmSync(target, { recursive: true, force: true });
    }
    expect(hostMountinfo()).toBe(before);
  });

  it("without the mount namespace the attach is refused (no host mount is ever made)", async () => {
    const before = hostMountinfo();
    const target = mkdtempSync(join(tmpdir(), "userns-spawn-mount-"));
    let src = -1;
    try {
      src = detachedTmpfs();
      const m = idmapMount(`/proc/self/fd/${src}`, { uidMap, gidMap });
      try {
        await expect(run("/bin/true", [], { mounts: [{ fd: m.fd, target }] })).rejects.toMatchObject({
          code: "ERR_USERNS_USAGE",
        });
      } finally {
        m.close();
      }
    } finally {
      if (src >= 0) native().close(src);
      rmSync(target, { recursive: true, force: true });
    }
    expect(hostMountinfo()).toBe(before);
  });
});
