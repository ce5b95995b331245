/**
 * existingLinkTarget: what a symlink operation's destination already points to, read from the plan and the host
 * (the error of a symlink over a different one says it, as bwrap's "existing destination is TARGET").
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { existingLinkTarget } from "../../lib/sandbox/prepare.js";
import type { FsOperation } from "../../lib/sandbox/types.js";

describe("existingLinkTarget", () => {
  const dir = mkdtempSync(join(tmpdir(), "userns-link-"));
  mkdirSync(join(dir, "sub"));
  symlinkSync("/dev/null", join(dir, "sub", "link"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("an earlier symlink operation to the same place (paths compared normalised)", () => {
    const ops: FsOperation[] = [
      { op: "symlink", target: "a", dest: "/x/l" },
      { op: "chmod", dest: "/x", mode: 0o755 },
      { op: "symlink", target: "b", dest: "/x//l/" },
    ];
    expect(existingLinkTarget(ops, 2, "/x//l/")).toBe("a");
  });

  it("a host link below the last bind that covers the destination, also through a bind of /", () => {
    const ops: FsOperation[] = [
      { op: "bind", source: "/", dest: "/", readOnly: true },
      { op: "bind", source: dir, dest: "/w" },
      { op: "symlink", target: "/dev/full", dest: "/w/sub/link" },
    ];
    expect(existingLinkTarget(ops, 2, "/w/sub/link")).toBe("/dev/null");
    const root: FsOperation[] = [
      { op: "bind", source: "/", dest: "/" },
      { op: "symlink", target: "/dev/full", dest: join(dir, "sub", "link") },
    ];
    expect(existingLinkTarget(root, 1, join(dir, "sub", "link"))).toBe("/dev/null");
  });

  it("nothing known: not a link on the host, or below a filesystem made in the sandbox", () => {
    const ops: FsOperation[] = [
      { op: "bind", source: dir, dest: "/w" },
      { op: "tmpfs", dest: "/w/sub" },
      { op: "symlink", target: "/dev/full", dest: "/w/sub/link" },
      { op: "symlink", target: "/dev/full", dest: "/w/sub" },
    ];
    expect(existingLinkTarget(ops, 2, "/w/sub/link")).toBeUndefined();
    expect(existingLinkTarget(ops.slice(0, 1), 1, "/w/sub")).toBeUndefined();
    expect(existingLinkTarget([], 0, "/anything")).toBeUndefined();
  });
});
