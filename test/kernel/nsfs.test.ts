import { readlinkSync, statSync } from "node:fs";
import { expect, it } from "vitest";
import { UsernsError } from "../../lib/errors.js";
import { native } from "../../lib/kernel/native.js";
import { INIT_USER_NS_INO, nsInfo } from "../../lib/kernel/nsfs.js";
import { describeKernel } from "../helpers/kernel.js";

describeKernel("nsfs identity and ioctls", () => {
  it("identifies the initial user namespace as stat and readlink do", () => {
    const info = nsInfo("self", "user");
    const st = statSync("/proc/self/ns/user", { bigint: true });
    expect(info.ino).toBe(st.ino);
    expect(info.dev).toBe(st.dev);
    expect(info.ino).toBe(INIT_USER_NS_INO);
    expect(readlinkSync("/proc/self/ns/user")).toBe(`user:[${info.ino}]`);
    expect(info.type).toBe("user");
    expect(info.ownerUid).toBe(0);
    expect(typeof info.id).toBe("bigint");
  });

  it("reports the type of other namespaces and no owner for them", () => {
    const info = nsInfo("self", "mnt");
    expect(info.type).toBe("mnt");
    expect(info.ownerUid).toBeUndefined();
  });

  it("NS_GET_PARENT of the initial namespace fails with EPERM as a UsernsError", () => {
    const b = native();
    const fd = b.openNs("/proc/self/ns/user");
    try {
      let err: unknown;
      try {
        b.nsGetParent(fd);
      } catch (e) {
        err = e;
      }
      expect(UsernsError.isUsernsError(err)).toBe(true);
      const ue = err as UsernsError;
      expect(ue.code).toBe("EPERM");
      expect(ue.errno).toBe(1);
      expect(ue.syscall).toBe("ioctl");
      expect(ue.message).toMatch(/^NS_GET_PARENT of namespace fd \d+: EPERM$/);
    } finally {
      b.close(fd);
    }
  });

  it("NS_GET_OWNER_UID on a non-user namespace is EINVAL", () => {
    const b = native();
    const fd = b.openNs("/proc/self/ns/uts");
    try {
      expect(() => b.nsGetOwnerUid(fd)).toThrow(expect.objectContaining({ code: "EINVAL" }));
    } finally {
      b.close(fd);
    }
  });

  it("opening a missing namespace file names the path and ENOENT", () => {
    expect(() => nsInfo({ path: "/proc/self/ns/nonexistent" })).toThrow(
      expect.objectContaining({
        code: "ENOENT",
        syscall: "open",
        message: expect.stringContaining("/proc/self/ns/nonexistent"),
      }),
    );
  });

  it("rejects a non-fd argument with a TypeError, not a crash", () => {
    expect(() => (native().nsGetOwnerUid as (x: unknown) => number)("x")).toThrow(TypeError);
  });
});
