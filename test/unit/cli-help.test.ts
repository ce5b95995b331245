import { describe, expect, it } from "vitest";
import { buildProgram, main } from "../../lib/cli/main.js";

describe("userns --help", () => {
  const names = buildProgram({ out: () => {}, err: () => {} }).commands.map((c) => c.name());

  it("has the documented commands", () => {
    expect([...names].sort()).toEqual(
      [
        "alloc",
        "check",
        "convert",
        "demo",
        "doctor",
        "ids",
        "ls",
        "mount",
        "release",
        "run",
        "show",
        "subid",
        "verify",
      ].sort(),
    );
  });

  it.each(names)("%s --help shows examples and --json, and exits 0", async (name) => {
    let out = "";
    const io = { out: (s: string) => (out += s), err: (s: string) => (out += s) };
    const program = buildProgram(io);
    let code = 0;
    try {
      await program.parseAsync([name, "--help"], { from: "user" });
    } catch (e) {
      code = (e as { code?: string }).code === "commander.helpDisplayed" ? 0 : 1;
    }
    expect(code).toBe(0);
    expect(out).toMatch(/Examples:\n {2}\$ userns /);
    expect(out).toContain("--json");
  });

  it("an unknown command is a usage error (exit 2)", async () => {
    const err = process.stderr.write;
    process.stderr.write = () => true;
    try {
      expect(await main(["no-such-command"])).toBe(2);
    } finally {
      process.stderr.write = err;
    }
  });
});
