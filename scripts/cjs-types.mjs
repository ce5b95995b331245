#!/usr/bin/env node
// Writes dist/cjs/: the declarations of dist/ once more, under a package.json
// that says "type": "commonjs". The `require` condition of package.json's
// `exports` points TypeScript there, so a CommonJS project (module node16)
// sees a CommonJS module with the same exports instead of an ES module it may
// not require (TS1479). At run time `require("userns")` loads the same ES
// module files through Node's require(esm) (20.19+ and 22.12+, which is what
// `engines` admits): one copy of the code, so no dual-package hazard.
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const dist = join(import.meta.dirname, "..", "dist");
const out = join(dist, "cjs");
rmSync(out, { recursive: true, force: true });
let n = 0;
function walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (p !== out) walk(p);
    } else if (e.name.endsWith(".d.ts")) {
      const to = join(out, relative(dist, p));
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(p, to);
      n++;
    }
  }
}
walk(dist);
writeFileSync(join(out, "package.json"), `${JSON.stringify({ type: "commonjs" }, null, 2)}\n`);
console.log(`cjs-types: ${n} declaration files in ${relative(process.cwd(), out) || out}`);
