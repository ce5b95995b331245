/**
 * Runs code in a child process alone in a private mount namespace
 * (`unshare --mount --propagation private`), against the library compiled
 * to a temporary directory (the child is plain Node, which cannot load the
 * TypeScript sources). Mounts made there never reach the host.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativePath, packageRoot } from "../../lib/kernel/native.js";

let built: string | undefined;

function sourcesHash(dir: string, h = createHash("sha256")): ReturnType<typeof createHash> {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) sourcesHash(p, h);
    else if (e.name.endsWith(".ts")) h.update(p).update(readFileSync(p));
  }
  return h;
}

/**
 * The library compiled for child processes; returns the output directory
 * (like dist/). Keyed by a hash of lib/, so test files and runs share one
 * build and a stale one is never used; it lives in node_modules/.cache so
 * the compiled code resolves the package's dependencies.
 */
export function compiledLib(): string {
  if (built !== undefined) return built;
  const cache = join(packageRoot, "node_modules", ".cache");
  const dir = join(cache, `userns-test-build-${sourcesHash(join(packageRoot, "lib")).digest("hex").slice(0, 16)}`);
  if (!existsSync(join(dir, ".complete"))) {
    mkdirSync(cache, { recursive: true });
    const tmp = mkdtempSync(join(cache, "userns-test-build-tmp-"));
    try {
      execFileSync(join(packageRoot, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.build.json", "--outDir", tmp], {
        cwd: packageRoot,
        stdio: "pipe",
      });
      writeFileSync(join(tmp, ".complete"), "");
      // Readable by every uid: some scenarios run a child as uid 1000.
      chmodSync(tmp, 0o755);
      try {
        renameSync(tmp, dir);
      } catch {
        // Another test file finished the same build first; use theirs.
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  built = dir;
  return dir;
}

/** Env for children: the compiled runner and this process's addon. */
export function childEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    USERNS_BINDING: nativePath(),
    USERNS_MOUNT_RUNNER: join(compiledLib(), "mounts", "runner-main.js"),
  };
}

/**
 * Runs an ES module body in a private mount namespace. `LIB` in the body is
 * the compiled library directory; the body prints one JSON value with
 * `out(value)`. Returns that value.
 *
 * `TMP` in the body is an empty directory for this scenario alone; make
 * scratch directories and mount points under it, never elsewhere in /tmp.
 * It is removed afterwards from this (the host's) mount namespace, where
 * nothing was ever mounted on or under it: there it is plain directories,
 * so nothing is left behind even if the scenario failed half-way or was
 * killed, and nothing is unmounted on the host.
 */
export function inPrivateMountNs<T>(body: string, timeoutMs = 60_000): T {
  const lib = compiledLib();
  const dir = mkdtempSync(join(tmpdir(), "userns-mountns-"));
  try {
    // Searchable by every uid: some scenarios act as other uids under TMP.
    chmodSync(dir, 0o755);
    const file = join(dir, "scenario.mjs");
    writeFileSync(
      file,
      `const LIB = ${JSON.stringify(lib)};\nconst TMP = ${JSON.stringify(dir)};\nconst out = (v) => process.stdout.write(JSON.stringify(v, (k, x) => typeof x === "bigint" ? String(x) : x) + "\\n");\n${body}\n`,
    );
    const r = spawnSync("unshare", ["--mount", "--propagation", "private", "--", process.execPath, file], {
      encoding: "utf8",
      env: childEnv(),
      timeout: timeoutMs,
    });
    if (r.status !== 0) throw new Error(`scenario failed (${r.status ?? r.signal}):\n${r.stderr}\n${r.stdout}`);
    const lines = r.stdout.trim().split("\n");
    return JSON.parse(lines[lines.length - 1]!) as T;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The host's mount table, to compare before and after a test. */
export function hostMountinfo(): string {
  return readFileSync("/proc/self/mountinfo", "utf8");
}
