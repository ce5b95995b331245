/**
 * Type tests with the TypeScript compiler: test/types/api.ts must compile
 * with no error (its `@ts-expect-error` lines must each be an error), and
 * each file in test/types/fail/ must fail with exactly the error its
 * `// expect: TSnnnn` line names, on its last line.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const typesDir = join(root, "test", "types");
const failDir = join(typesDir, "fail");
const failFiles = readdirSync(failDir)
  .filter((f) => f.endsWith(".ts"))
  .sort();

let diagnostics: Map<string, ts.Diagnostic[]>;

beforeAll(() => {
  const config = ts.readConfigFile(join(root, "tsconfig.json"), ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const files = [join(typesDir, "api.ts"), ...failFiles.map((f) => join(failDir, f))];
  // One program for every file: the library is checked once.
  const program = ts.createProgram(files, { ...parsed.options, noEmit: true });
  diagnostics = new Map();
  for (const f of files) {
    const sf = program.getSourceFile(f)!;
    diagnostics.set(f, [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]);
  }
}, 120_000);

const show = (d: ts.Diagnostic): string => `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;

describe("type tests", () => {
  it("test/types/api.ts compiles (stream nullability, events, error codes, run's result, inspectMount)", () => {
    expect(diagnostics.get(join(typesDir, "api.ts"))!.map(show)).toEqual([]);
  });

  it("has fixtures that must not compile", () => {
    expect(failFiles.length).toBeGreaterThanOrEqual(6);
  });

  it.each(failFiles)("test/types/fail/%s does not compile, with the expected error", (file) => {
    const path = join(failDir, file);
    const text = readFileSync(path, "utf8");
    const expected = /\/\/ expect: TS(\d+)/.exec(text)?.[1];
    expect(expected, "the fixture names its error").toBeDefined();
    const ds = diagnostics.get(path)!;
    expect(ds.map(show)).toHaveLength(1);
    const d = ds[0]!;
    expect(show(d)).toMatch(new RegExp(`^TS${expected}:`));
    // On the statement the fixture is about: its last line.
    const lastLine = text.trimEnd().split("\n").length - 1;
    const line = d.file!.getLineAndCharacterOfPosition(d.start!).line;
    expect(line).toBe(lastLine);
  });
});
