import { describe, expect, it } from "vitest";
import { formatTable } from "../../lib/cli/table.js";

describe("formatTable", () => {
  it.each([
    {
      name: "header, underline, right-aligned numbers, last column unpadded",
      rows: [
        ["uid", 0, 100000],
        ["gid", 65536, 1],
      ],
      opts: { header: ["KIND", "FIRST", "LOWER"], align: ["left", "right", "right"] as const },
      want: "KIND  FIRST   LOWER\n----  -----  ------\nuid       0  100000\ngid   65536       1\n",
    },
    {
      name: "no header",
      rows: [
        ["a", "bb"],
        ["ccc", "d"],
      ],
      opts: {},
      want: "a    bb\nccc  d\n",
    },
    {
      name: "unicode counts as one column",
      rows: [
        ["✓", "x"],
        ["ok", "y"],
      ],
      opts: { gap: 1 },
      want: "✓  x\nok y\n",
    },
    { name: "ragged rows and indent", rows: [["a"], ["bb", "c"]], opts: { indent: "  " }, want: "  a\n  bb  c\n" },
    { name: "empty", rows: [], opts: {}, want: "" },
  ])("$name", ({ rows, opts, want }) => {
    expect(formatTable(rows, { ...opts, align: opts.align ? [...opts.align] : undefined })).toBe(want);
  });
});
