/**
 * The package as a user gets it: `npm pack` in a fresh copy of the sources
 * (after the equivalent of `npm ci`), then `npm install --ignore-scripts
 * --offline` of the tarball into an empty project whose PATH has node and npm
 * and nothing else (no g++, cc, make or python3), and a program spawned in a
 * new user namespace from ESM, CommonJS, and strict TypeScript compiled with
 * module node16 both as an ES module and as CommonJS against the shipped
 * declarations.
 */
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { packageRoot } from "../../lib/kernel/native.js";
import { describeKernel } from "../helpers/kernel.js";

const spawnOptions = `{ namespaces: ["user"], uidMap: "0 100000 65536\\n", gidMap: "0 100000 65536\\n", uid: 0, gid: 0 }`;

/**
 * execFileSync, but a failure says what the program printed (tsc reports on stdout). Everything runs at a lower
 * priority (nice 10): these compiles take minutes of CPU and other test files run beside this one with timeouts.
 */
function exec(file: string, args: string[], opts: Parameters<typeof execFileSync>[2] = {}): string {
  try {
    return execFileSync("/usr/bin/nice", ["-n", "10", file, ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      ...opts,
    }) as string;
  } catch (e) {
    const x = e as { stdout?: unknown; stderr?: unknown; message: string };
    throw new Error(
      `${file} ${args.join(" ")} failed: ${x.message}\n${String(x.stdout ?? "")}\n${String(x.stderr ?? "")}`,
    );
  }
}

/** What each consumer program prints: the program's uid inside, the map method, and a typed error code. */
interface Report {
  stdout: string;
  method: string;
  missing: string;
}

describeKernel("the packed package, installed without a compiler", () => {
  let dir: string;
  let tarball: string;
  let project: string;
  let bareEnv: NodeJS.ProcessEnv;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "userns-pack-"));
    // A fresh clone: the files git knows (tracked, and new ones not ignored), no build/, dist/ or prebuilds/.
    const clone = join(dir, "clone");
    const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
      cwd: packageRoot,
      encoding: "utf8",
    })
      .split("\0")
      .filter((f) => f !== "" && existsSync(join(packageRoot, f)));
    for (const f of files) {
      mkdirSync(dirname(join(clone, f)), { recursive: true });
      copyFileSync(join(packageRoot, f), join(clone, f));
    }
    // What `npm ci` would install, without the network.
    symlinkSync(join(packageRoot, "node_modules"), join(clone, "node_modules"));
    // prepack builds prebuilds/ with prebuildify, prepare compiles dist/ (their output is on stdout too).
    exec("npm", ["pack", "--pack-destination", dir], { cwd: clone });
    const tgz = readdirSync(dir).filter((f) => f.endsWith(".tgz"));
    expect(tgz).toHaveLength(1);
    tarball = join(dir, tgz[0]!);

    // PATH with node and npm only.
    const bin = join(dir, "bin");
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, "node"));
    const npmCli = realpathSync(execFileSync("sh", ["-c", "command -v npm"], { encoding: "utf8" }).trim());
    symlinkSync(npmCli, join(bin, "npm"));
    bareEnv = { HOME: process.env.HOME, PATH: bin, USERNS_BINDING: "" };

    project = join(dir, "project");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true }));
    // The dependencies as tarballs packed from the copies npm ci installed: a new install would otherwise ask the
    // registry for their metadata (the cache holds their contents, not what npm needs to resolve a range offline).
    const deps = Object.keys(
      (JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { dependencies: Record<string, string> })
        .dependencies,
    );
    const depDir = join(dir, "deps");
    mkdirSync(depDir);
    for (const d of deps)
      exec("npm", ["pack", "--ignore-scripts", "--pack-destination", depDir, join(packageRoot, "node_modules", d)]);
    const depTarballs = readdirSync(depDir).map((f) => join(depDir, f));
    expect(depTarballs).toHaveLength(deps.length);
    exec(
      "npm",
      [
        "install",
        "--ignore-scripts",
        "--offline",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        tarball,
        ...depTarballs,
      ],
      { cwd: project, env: bareEnv },
    );
  }, 600_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the tarball ships dist/, the CommonJS declarations and prebuilds/linux-x64 (glibc), and no build/", () => {
    const list = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).split("\n");
    expect(list).toContain("package/prebuilds/linux-x64/userns.glibc.node");
    expect(list).toContain("package/dist/index.js");
    expect(list).toContain("package/dist/index.d.ts");
    expect(list).toContain("package/dist/cjs/index.d.ts");
    expect(list).toContain("package/dist/cjs/package.json");
    // The sources stay, for `npm rebuild userns` where no prebuilt binary fits.
    expect(list).toContain("package/binding.gyp");
    expect(list.some((f) => f.startsWith("package/build/"))).toBe(false);
  });

  it("the bare PATH really has no compiler, make or Python", () => {
    for (const tool of ["g++", "cc", "gcc", "make", "python3", "c++"])
      expect(() => execFileSync("sh", ["-c", `command -v ${tool}`], { env: bareEnv })).toThrow();
    expect(readdirSync(join(dir, "bin")).sort()).toEqual(["node", "npm"]);
  });

  it("was installed without compiling: no build/, and doctor loads the prebuilt addon", () => {
    const installed = join(project, "node_modules", "userns");
    expect(existsSync(join(installed, "build"))).toBe(false);
    const out = exec("node", [join(installed, "bin", "userns.js"), "doctor", "--json"], { cwd: project, env: bareEnv });
    const addon = (JSON.parse(out) as { checks: { id: string; verdict: string; detail: string }[] }).checks.find(
      (c) => c.id === "addon",
    );
    expect(addon?.verdict).toBe("ok");
    expect(addon?.detail).toContain(join(installed, "prebuilds", "linux-x64", "userns.glibc.node"));
  });

  const expectReport = (out: string): void => {
    const r = JSON.parse(out) as Report;
    expect(r).toEqual({ stdout: "0\n", method: "direct", missing: "ENOENT" });
  };

  it("spawns in a new user namespace from an ES module", () => {
    writeFileSync(
      join(project, "esm.mjs"),
      `import { run, RunError } from "userns";
       import { IdMap } from "userns/model";
       IdMap.of([0, 100000, 1]);
       const r = await run("/usr/bin/id", ["-u"], ${spawnOptions});
       const missing = await run("/nonexistent").catch((e) => (e instanceof RunError ? e.code : "?"));
       console.log(JSON.stringify({ stdout: r.stdout, method: r.mapping.method, missing }));`,
    );
    expectReport(exec("node", ["esm.mjs"], { cwd: project, env: bareEnv }));
  });

  it("spawns in a new user namespace from CommonJS (require)", () => {
    writeFileSync(
      join(project, "cjs.cjs"),
      `const { run, RunError } = require("userns");
       const { IdMap } = require("userns/model");
       IdMap.of([0, 100000, 1]);
       (async () => {
         const r = await run("/usr/bin/id", ["-u"], ${spawnOptions});
         const missing = await run("/nonexistent").catch((e) => (e instanceof RunError ? e.code : "?"));
         console.log(JSON.stringify({ stdout: r.stdout, method: r.mapping.method, missing }));
       })();`,
    );
    expectReport(exec("node", ["cjs.cjs"], { cwd: project, env: bareEnv }));
  });

  // The same TypeScript source, compiled as an ES module and as CommonJS (module node16, strict, lib check on).
  const tsSource = `import { run, spawn, UsernsError, type UsernsErrorCode } from "userns";
import { IdMap } from "userns/model";

async function main(): Promise<void> {
  IdMap.of([0, 100000, 1]);
  // stdio defaults to pipes: the streams are not null.
  const child = spawn("/bin/true", [], ${spawnOptions});
  child.stdout.resume();
  child.on("exit", (code: number | null) => void code);
  await child;
  const r = await run("/usr/bin/id", ["-u"], ${spawnOptions});
  let missing: UsernsErrorCode | "?" = "?";
  try {
    await run("/nonexistent");
  } catch (e) {
    if (UsernsError.isUsernsError(e)) missing = e.code;
  }
  console.log(JSON.stringify({ stdout: r.stdout, method: r.mapping?.method, missing }));
}
void main();
`;

  it.each([
    { name: "an ES module", type: "module" },
    { name: "CommonJS", type: "commonjs" },
  ])(
    "spawns from strict TypeScript (module node16) compiled as $name against the shipped types",
    ({ type }) => {
      const ts = join(project, `ts-${type}`);
      mkdirSync(ts, { recursive: true });
      writeFileSync(join(ts, "package.json"), JSON.stringify({ type }));
      writeFileSync(
        join(ts, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            module: "node16",
            moduleResolution: "node16",
            strict: true,
            skipLibCheck: false,
            types: ["node"],
            typeRoots: [join(packageRoot, "node_modules", "@types")],
            outDir: "out",
          },
          files: ["main.ts"],
        }),
      );
      writeFileSync(join(ts, "main.ts"), tsSource);
      const tsc = join(packageRoot, "node_modules", "typescript", "bin", "tsc");
      exec("node", [tsc, "-p", ts], { cwd: ts, env: bareEnv });
      const js = readFileSync(join(ts, "out", "main.js"), "utf8");
      // Really the module system asked for.
      if (type === "commonjs") expect(js).toMatch(/require\("userns"\)/);
      else expect(js).toMatch(/from "userns"/);
      expectReport(exec("node", [join(ts, "out", "main.js")], { cwd: ts, env: bareEnv }));
      // tsc checks all of @types/node too (skipLibCheck off): tens of seconds on a busy machine.
    },
    300_000,
  );

  // Last: it changes the installed copy.
  it("without its prebuilt binary the package says to run `npm rebuild userns`, and that fixes it", () => {
    const installed = join(project, "node_modules", "userns");
    rmSync(join(installed, "prebuilds"), { recursive: true });
    const probe = `import("userns").then((u) => u.run("/bin/true", [], ${spawnOptions})).then(
      () => console.log("ok"), (e) => console.log(e.code + " " + e.message));`;
    const before = exec("node", ["-e", probe], { cwd: project, env: bareEnv });
    expect(before).toMatch(/^ERR_USERNS_NATIVE_LOAD /);
    expect(before).toContain("prebuilds/linux-x64/userns.glibc.node: not present");
    expect(before).toContain("`npm rebuild userns`");
    // The fix, where a compiler is on PATH (node-gyp's headers come from its cache here: no network).
    exec("npm", ["rebuild", "userns", "--offline", "--foreground-scripts=false"], { cwd: project });
    expect(existsSync(join(installed, "build", "Release", "userns.node"))).toBe(true);
    expect(exec("node", ["-e", probe], { cwd: project, env: bareEnv }).trim()).toBe("ok");
  }, 600_000);
});
