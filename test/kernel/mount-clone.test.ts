/**
 * native cloneIdmapped: open_tree(OPEN_TREE_CLONE) and mount_setattr in one
 * call. Only detached clones are made here (they never enter a mount
 * table), so the host's mounts stay as they were; afterEach checks it.
 */
import { readdirSync } from "node:fs";
import { afterEach, beforeEach, expect, it } from "vitest";
import { native } from "../../lib/kernel/native.js";
import { AT_EMPTY_PATH, AT_FDCWD, MOUNT_ATTR, OPEN_TREE_CLONE } from "../../lib/mounts/constants.js";
import { createHelperUserns } from "../../lib/mounts/helper-userns.js";
import { describeKernel } from "../helpers/kernel.js";
import { hostMountinfo } from "../helpers/mountns.js";

const MAP = "0 100000 65536\n";
const fds = () => readdirSync("/proc/self/fd").length;

let before = "";
beforeEach(() => {
  before = hostMountinfo();
});
afterEach(() => {
  expect(hostMountinfo()).toBe(before);
});

describeKernel("native cloneIdmapped", () => {
  it("returns a detached idmapped clone: ownership through it is shifted", () => {
    const b = native();
    const ns = createHelperUserns({ uidMap: MAP, gidMap: MAP });
    try {
      const fd = b.cloneIdmapped(AT_FDCWD, "/tmp", OPEN_TREE_CLONE, AT_EMPTY_PATH, MOUNT_ATTR.IDMAP, 0, 0, ns.fd);
      try {
        // /tmp's root is owned by on-disk 0, seen as 100000 through the clone.
        expect(b.fstatAt(fd, "", AT_EMPTY_PATH).uid).toBe(100000);
      } finally {
        b.close(fd);
      }
    } finally {
      ns.close();
    }
  });

  it("a refused mount_setattr names mount_setattr and closes the clone (no fd left behind)", () => {
    const b = native();
    const init = b.openNs("/proc/self/ns/user");
    try {
      const n = fds();
      let caught: { code?: string; syscall?: string; message?: string } | undefined;
      try {
        b.cloneIdmapped(AT_FDCWD, "/tmp", OPEN_TREE_CLONE, AT_EMPTY_PATH, MOUNT_ATTR.IDMAP, 0, 0, init);
      } catch (e) {
        caught = e as typeof caught;
      }
      expect(caught).toMatchObject({ code: "EPERM", syscall: "mount_setattr" });
      expect(caught?.message).toContain("/tmp");
      expect(fds()).toBe(n);
    } finally {
      b.close(init);
    }
  });

  it("a refused open_tree names open_tree", () => {
    const b = native();
    const n = fds();
    expect(() =>
      b.cloneIdmapped(AT_FDCWD, "/nonexistent-userns-path", OPEN_TREE_CLONE, AT_EMPTY_PATH, MOUNT_ATTR.IDMAP, 0, 0, 0),
    ).toThrow(expect.objectContaining({ code: "ENOENT", syscall: "open_tree" }));
    expect(fds()).toBe(n);
  });
});
