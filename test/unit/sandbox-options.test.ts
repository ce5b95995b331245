import { describe, expect, it } from "vitest";
import { UsernsError } from "../../lib/errors.js";
import { capabilityNumber, describeFsOp, sandboxStepError } from "../../lib/sandbox/prepare.js";
import type { FsOperation } from "../../lib/sandbox/types.js";
import { type SpawnOptions, validateSpawnOptions } from "../../lib/spawn/index.js";

function usage(options: SpawnOptions): string {
  try {
    validateSpawnOptions(options);
  } catch (e) {
    expect(UsernsError.isUsernsError(e)).toBe(true);
    expect((e as UsernsError).code).toBe("ERR_USERNS_USAGE");
    return (e as UsernsError).message;
  }
  return "ok";
}

const ns = ["user", "mount", "pid", "uts", "net"] as const;
const fs = (...ops: unknown[]): SpawnOptions => ({ namespaces: ns, filesystem: ops as FsOperation[] });

describe("sandbox option validation (before any syscall): names the operation's index and field", () => {
  it.each([
    { options: { namespaces: ["user"], filesystem: [] }, message: /filesystem needs namespaces to include "mount"/ },
    {
      options: fs({ op: "bind", source: "rel", dest: "/x" }),
      message: /^filesystem\[0\] \(bind\): source must be an absolute path/,
    },
    {
      options: fs({ op: "dir", dest: "/a" }, { op: "tmpfs", dest: "x" }),
      message: /^filesystem\[1\] \(tmpfs\): dest must be an absolute path/,
    },
    {
      options: fs({ op: "tmpfs", dest: "/t", mode: 0o17777 }),
      message: /^filesystem\[0\] \(tmpfs\): mode must be a mode/,
    },
    { options: fs({ op: "tmpfs", dest: "/t", size: -1 }), message: /size must be a positive integer/ },
    { options: fs({ op: "chmod", dest: "/t" }), message: /^filesystem\[0\] \(chmod\): mode must be/ },
    { options: fs({ op: "file", dest: "/", content: "x" }), message: /dest must not be "\/"/ },
    {
      options: fs({ op: "file", dest: "/f", content: 5 }),
      message: /content must be a string, a Uint8Array or \{ fd \}/,
    },
    {
      options: fs({ op: "overlay", dest: "/o", lower: ["/a"] }),
      message: /read-only overlay needs at least two lower/,
    },
    {
      options: fs({ op: "overlay", dest: "/o", lower: ["/a"], upper: "/u" }),
      message: /work must be an absolute path/,
    },
    { options: fs({ op: "overlay", dest: "/o", lower: ["/a:b", "/c"] }), message: /lower\[0\] must not contain/ },
    { options: fs({ op: "idmappedBind", source: "/s", dest: "/d" }), message: /give uidMap\/gidMap or userns/ },
    { options: fs({ op: "nope", dest: "/d" }), message: /^filesystem\[0\]: unknown operation "nope"/ },
    { options: { ...fs(), mountPropagation: "unchanged" }, message: /must not propagate to the host/ },
    { options: { namespaces: ["user"], hostname: "h" }, message: /hostname needs namespaces to include "uts"/ },
    { options: { namespaces: ns, hostname: "x".repeat(65) }, message: /at most 64 bytes/ },
    { options: { capabilities: ["CAP_NOPE"] }, message: /unknown capability "CAP_NOPE"/ },
    { options: { seccomp: [new Uint8Array(7)] }, message: /seccomp\[0\] must be/ },
    { options: { namespaces: ["user"], init: "reaper" }, message: /init "reaper" needs namespaces to include "pid"/ },
    {
      options: { namespaces: ["user", "pid"], init: "reaper", join: "/proc/self/ns/net" },
      message: /cannot be combined with join/,
    },
    { options: { namespaces: ["user"], loopback: true }, message: /loopback needs namespaces to include "net"/ },
    { options: { namespaces: ["mount"], disableUserNamespaces: true }, message: /needs namespaces to include "user"/ },
    { options: { namespaces: ["user"], disableUserNamespaces: true, groups: [1] }, message: /groups cannot be set/ },
  ] as { options: SpawnOptions; message: RegExp }[])("$message", ({ options, message }) => {
    expect(usage(options)).toMatch(message);
  });

  it("accepts a bwrap-like sandbox", () => {
    expect(
      usage({
        ...fs(
          { op: "bind", source: "/", dest: "/", readOnly: true },
          { op: "dev", dest: "/dev" },
          { op: "proc", dest: "/proc" },
          { op: "tmpfs", dest: "/tmp" },
        ),
        hostname: "h",
        capabilities: [],
        init: "reaper",
        noNewPrivileges: true,
      }),
    ).toBe("ok");
  });

  it("spells capabilities as the uapi does, with or without CAP_, any case", () => {
    expect(capabilityNumber("CAP_SYS_ADMIN")).toBe(21);
    expect(capabilityNumber("sys_admin")).toBe(21);
    expect(capabilityNumber("Net_Admin")).toBe(12);
  });

  it("labels operations as errors name them", () => {
    expect(describeFsOp({ op: "bind", source: "/srv/data", dest: "/data" }, 4)).toBe(
      "filesystem step 4 (bind /srv/data → /data)",
    );
    expect(describeFsOp({ op: "bind", source: "/a", dest: "/b", readOnly: true, optional: true }, 0)).toBe(
      "filesystem step 0 (ro-bind-try /a → /b)",
    );
    expect(describeFsOp({ op: "chmod", dest: "/x", mode: 0o700 }, 2)).toBe("filesystem step 2 (chmod 0700 /x)");
  });

  it("decodes the child's stage and errno into the error (stage 1 ENOENT: source does not exist)", () => {
    const e = sandboxStepError(
      {
        op: "sandbox",
        code: 17,
        a: 0,
        b: 0,
        label: "filesystem step 4 (bind /srv/data → /data)",
        syscall: "mount",
        kind: "bind",
        path: "/srv/data",
      },
      (1 << 12) | 2,
    );
    expect(e.message).toBe("filesystem step 4 (bind /srv/data → /data): ENOENT: source does not exist");
    expect({ code: e.code, errno: e.errno, syscall: e.syscall, step: e.step, path: e.path }).toEqual({
      code: "ENOENT",
      errno: 2,
      syscall: "open_tree",
      step: "filesystem step 4 (bind /srv/data → /data)",
      path: "/srv/data",
    });
  });
});
