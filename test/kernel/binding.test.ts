import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { nativePath, packageRoot } from "../../lib/kernel/native.js";
import { describeKernel } from "../helpers/kernel.js";

describeKernel("native binding", () => {
  it("is the sanitizer build when the sanitizer job runs, and that build really has ASan", () => {
    // Guards the sanitizer job against silently testing the normal build.
    if (process.env.USERNS_EXPECT_SANITIZER) {
      expect(nativePath()).toContain("build-sanitize");
      expect(readFileSync("/proc/self/maps", "utf8")).toMatch(/libasan/);
    } else {
      expect(nativePath()).toMatch(/(build\/Release|prebuilds)/);
    }
  });

  it("binding.gyp and CMakeLists.txt both read the one source list", () => {
    const gyp = readFileSync(join(packageRoot, "binding.gyp"), "utf8");
    const cmake = readFileSync(join(packageRoot, "CMakeLists.txt"), "utf8");
    expect(gyp).toContain("native/sources.txt");
    expect(cmake).toContain("native/sources.txt");
    const listed = readFileSync(join(packageRoot, "native/sources.txt"), "utf8").split("\n").filter(Boolean);
    // native/child/ holds the child side's sources: the list covers subfolders too.
    const onDisk = (readdirSync(join(packageRoot, "native"), { recursive: true }) as string[])
      .filter((f) => f.endsWith(".cc"))
      .map((f) => `native/${f}`);
    expect([...listed].sort()).toEqual(onDisk.sort());
  });

  it("loads from a prebuild alone, with no build/ directory", () => {
    execFileSync("npm", ["run", "prebuild"], { cwd: packageRoot, stdio: "pipe" });
    const dir = mkdtempSync(join(tmpdir(), "userns-prebuild-"));
    try {
      cpSync(join(packageRoot, "prebuilds"), join(dir, "prebuilds"), { recursive: true });
      cpSync(join(packageRoot, "package.json"), join(dir, "package.json"));
      execFileSync("npx", ["tsc", "-p", "tsconfig.build.json", "--outDir", join(dir, "dist")], { cwd: packageRoot });
      symlinkSync(join(packageRoot, "node_modules"), join(dir, "node_modules"));
      expect(existsSync(join(dir, "build"))).toBe(false);
      const out = execFileSync(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `import { nsInfo } from "./dist/index.js"; import { nativePath } from "./dist/kernel/native.js";
             console.log(JSON.stringify({ path: nativePath(), ino: String(nsInfo("self").ino) }));`,
        ],
        { cwd: dir, encoding: "utf8", env: { ...process.env, USERNS_BINDING: "" } },
      );
      const r = JSON.parse(out) as { path: string; ino: string };
      expect(r.path.startsWith(join(dir, "prebuilds", "linux-x64"))).toBe(true);
      expect(r.ino).toBe("4026531837");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
