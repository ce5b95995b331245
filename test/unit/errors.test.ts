import { describe, expect, it } from "vitest";
import { errnoName, errnoNumber, UsernsError } from "../../lib/errors.js";

describe("UsernsError", () => {
  it("derives code from errno and builds a Node-style message", () => {
    const e = new UsernsError("writing uid_map of pid 4242", {
      errno: 1,
      syscall: "write",
      step: "uid_map",
      reason: "lower ids 100000-165535 are not mapped in the parent namespace",
    });
    expect(e.code).toBe("EPERM");
    expect(e.errno).toBe(1);
    expect(e.syscall).toBe("write");
    expect(e.step).toBe("uid_map");
    expect(e.message).toBe(
      "writing uid_map of pid 4242: EPERM: lower ids 100000-165535 are not mapped in the parent namespace",
    );
    expect(e.name).toBe("UsernsError");
    expect(Object.keys(e)).not.toContain("name");
    expect(UsernsError.isUsernsError(e)).toBe(true);
    expect(UsernsError.isUsernsError(new Error("x"))).toBe(false);
  });

  it("derives errno from a code", () => {
    expect(new UsernsError("x", { code: "EINVAL" }).errno).toBe(22);
  });

  it.each([
    [1, "EPERM"],
    [22, "EINVAL"],
    [75, "EOVERFLOW"],
    [28, "ENOSPC"],
    [99999, "E99999"],
  ])("errnoName(%i) is %s", (n, name) => {
    expect(errnoName(n)).toBe(name);
  });

  it("errnoNumber inverts errnoName", () => {
    expect(errnoNumber("EACCES")).toBe(13);
    expect(errnoNumber("NOPE")).toBeUndefined();
  });
});
