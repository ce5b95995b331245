/**
 * examples/busybox-container.mjs as a user runs it, against a compiled copy of lib/ (its
 * `import ... from "userns"` resolves to it): as root (idmapped root filesystem through a held
 * namespace) and as the unprivileged CI user (newuidmap, plain bind).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { nativePath } from "../../lib/kernel/native.js";
import { describeKernel } from "../helpers/kernel.js";
import { compiledLib, hostMountinfo } from "../helpers/mountns.js";

const user = process.env.USERNS_TEST_USER ?? "usernstest";
let dir = "";

/** Under `npm run test:sanitize` the child Node loads the sanitized addon: it needs the same preload. */
function sanitizerEnv(): NodeJS.ProcessEnv {
  const keep = ["LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "USERNS_EXPECT_SANITIZER"];
  return Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
}

function example(args: string[], as?: { uid: number; gid: number }) {
  const r = spawnSync(process.execPath, [join(dir, "busybox-container.mjs"), ...args], {
    ...(as ?? {}),
    cwd: "/",
    env: { ...sanitizerEnv(), PATH: "/usr/bin:/bin", USERNS_BINDING: nativePath(), TMPDIR: tmpdir() },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describeKernel("examples/busybox-container.mjs", () => {
  beforeAll(() => {
    const lib = compiledLib();
    dir = mkdtempSync(join(tmpdir(), "userns-example-"));
    // The example as it is, beside a `userns` package that is the compiled library.
    copyFileSync(
      join(import.meta.dirname, "..", "..", "examples", "busybox-container.mjs"),
      join(dir, "busybox-container.mjs"),
    );
    const pkg = join(dir, "node_modules", "userns");
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "userns", type: "module", main: "index.js" }));
    writeFileSync(join(pkg, "index.js"), `export * from ${JSON.stringify(join(lib, "index.js"))};\n`);
    chmodSync(dir, 0o755);
    execFileSync("chmod", ["-R", "a+rX", dir]);
  }, 180_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("as root: a container on an idmapped busybox root, pid 1, no capabilities", () => {
    const before = hostMountinfo();
    const r = example([]);
    expect(r.err).toBe("");
    // Root-owned on disk, root-owned inside: on-disk 0 → 100000 through the idmapped mount → 0.
    expect(r.out).toBe(
      "hello from busybox\nuid=0(root) gid=0(root)\npid 1\n0:0 /bin/busybox\nCapEff:\t0000000000000000\n",
    );
    expect(r.code).toBe(0);
    expect(hostMountinfo()).toBe(before);
  });

  it("rootless: the same container through newuidmap, with a plain bind", () => {
    const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
    const r = example(["id -u; cat /proc/self/uid_map | tr -s ' '; hostname; echo $$; stat -c '%u %n' /bin/busybox"], {
      uid,
      gid,
    });
    expect(r.err).toBe("");
    expect(r.out).toBe(`0\n 0 ${uid} 1\n 1 300000 65535\nbusybox\n1\n0 /bin/busybox\n`);
    expect(r.code).toBe(0);
  });

  it("passes the command's exit status through", () => {
    expect(example(["exit 7"]).code).toBe(7);
  });
});
