/** docs/api.md names every export; docs/errors.md documents every code userns gives, and no other. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import * as api from "../../lib/index.js";

const root = join(import.meta.dirname, "..", "..");
const apiDoc = readFileSync(join(root, "docs", "api.md"), "utf8");
const errorsDoc = readFileSync(join(root, "docs", "errors.md"), "utf8");
const readme = readFileSync(join(root, "README.md"), "utf8");

/** The members of `export type UsernsOwnCode = | "A" | "B" ...;` in lib/errors.ts. */
function ownCodes(): string[] {
  const src = readFileSync(join(root, "lib", "errors.ts"), "utf8");
  const body = /export type UsernsOwnCode =([^;]+);/.exec(src)![1]!;
  return [...body.matchAll(/"([A-Z_]+)"/g)].map((m) => m[1]!);
}

describe("reference docs", () => {
  it("docs/api.md names every runtime export of the package", () => {
    const missing = Object.keys(api).filter((name) => !apiDoc.includes(`\`${name}`) && !apiDoc.includes(`${name}(`));
    expect(missing).toEqual([]);
  });

  it("docs/errors.md has a section for each of userns's own codes, and none for a code that does not exist", () => {
    const codes = ownCodes();
    expect(codes.length).toBeGreaterThanOrEqual(13);
    for (const c of codes) {
      expect(api.isUsernsErrorCode(c)).toBe(true);
      expect(errorsDoc).toContain(`### \`${c}\``);
    }
    const sections = [...errorsDoc.matchAll(/^### `([A-Z_]+)`$/gm)].map((m) => m[1]);
    expect(sections.sort()).toEqual([...codes].sort());
    // Each section says what causes it and what to do.
    for (const part of errorsDoc.split(/^### /m).slice(1)) {
      expect(part).toMatch(/\*\*Cause:\*\*/);
      expect(part).toMatch(/\*\*What to do:\*\*/);
    }
  });

  it("the README links both", () => {
    expect(readme).toContain("(docs/api.md)");
    expect(readme).toContain("(docs/errors.md)");
  });
});
