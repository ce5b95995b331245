/**
 * The layering of lib/: no import cycle anywhere, and the child layer
 * (lib/child) sits below the features that use it (spawn, namespaces,
 * mounts, verify) and imports none of them.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const lib = join(import.meta.dirname, "../../lib");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sources(join(dir, d.name)) : d.name.endsWith(".ts") ? [join(dir, d.name)] : [],
  );
}

/**
 * Relative imports that load a module at run time, as lib-relative .ts paths. `import type` (erased by tsc) is
 * left out: a type-only loop cannot deadlock module evaluation.
 */
function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of sources(lib)) {
    const text = readFileSync(f, "utf8").replace(/^import type [^;]+;$/gm, "");
    const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1]!);
    g.set(
      relative(lib, f),
      specs.map((s) => relative(lib, join(f, "..", s)).replace(/\.js$/, ".ts")),
    );
  }
  return g;
}

describe("lib/ import graph", () => {
  const g = graph();

  it("has no cycle", () => {
    const state = new Map<string, "open" | "done">();
    const cycles: string[] = [];
    const visit = (n: string, path: string[]): void => {
      if (state.get(n) === "done") return;
      if (state.get(n) === "open") {
        cycles.push([...path.slice(path.indexOf(n)), n].join(" -> "));
        return;
      }
      state.set(n, "open");
      for (const m of g.get(n) ?? []) visit(m, [...path, n]);
      state.set(n, "done");
    };
    for (const n of [...g.keys()].sort()) visit(n, []);
    expect(cycles).toEqual([]);
  });

  it("lib/child imports only itself, lib/model, lib/kernel, lib/subid and lib/errors.ts", () => {
    // lib/subid (the caller's subordinate ranges, which newuidmap's rules are checked against before any process
    // exists) sits below the child layer: it reads files and uses the model, nothing else.
    for (const [f, deps] of g) {
      if (!f.startsWith("child/")) continue;
      for (const d of deps) expect(d, `${f} imports ${d}`).toMatch(/^(child|model|kernel|subid)\/|^errors\.ts$/);
    }
  });

  it("lib/subid imports only itself, lib/model and lib/errors.ts", () => {
    for (const [f, deps] of g) {
      if (!f.startsWith("subid/")) continue;
      for (const d of deps) expect(d, `${f} imports ${d}`).toMatch(/^(subid|model)\/|^errors\.ts$/);
    }
  });
});
