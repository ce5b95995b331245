import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const modelDir = join(import.meta.dirname, "../../lib/model");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sources(join(dir, d.name)) : d.name.endsWith(".ts") ? [join(dir, d.name)] : [],
  );
}

describe("lib/model is pure", () => {
  it.each(sources(modelDir).map((f) => [f.slice(modelDir.length + 1), f]))(
    "%s imports only from lib/model",
    (_n, f) => {
      const text = readFileSync(f, "utf8");
      const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1]!);
      for (const s of specs) {
        // Relative imports must stay inside lib/model; no node: builtins, no packages.
        expect(s, `${f} imports ${s}`).toMatch(/^\.\.?\//);
        expect(join(f, "..", s).startsWith(modelDir), `${f} imports ${s}`).toBe(true);
      }
    },
  );
});
