/**
 * Aligned text tables for human CLI output: one helper shared by every command.
 */

/** Column alignment. */
export type Align = "left" | "right";

/** Options of {@link formatTable}. */
export interface TableOptions {
  /** Header row; underlined with dashes when given. */
  header?: readonly string[];
  /** Per-column alignment; numbers read best right-aligned. Default left. */
  align?: readonly Align[];
  /** Spaces between columns, default 2. */
  gap?: number;
  /** Prefix for every line, default "". */
  indent?: string;
}

/** Display width: code points, so `→` and `✓` count as one. */
function width(s: string): number {
  return [...s].length;
}

/**
 * Formats rows as an aligned table, one `\n`-terminated line per row. Cells
 * may contain anything but newlines; the last column is not padded.
 */
export function formatTable(rows: readonly (readonly (string | number)[])[], options: TableOptions = {}): string {
  const gap = " ".repeat(options.gap ?? 2);
  const indent = options.indent ?? "";
  const all = [...(options.header ? [options.header] : []), ...rows].map((r) => r.map((c) => String(c)));
  const cols = Math.max(0, ...all.map((r) => r.length));
  const widths = Array.from({ length: cols }, (_, i) => Math.max(0, ...all.map((r) => width(r[i] ?? ""))));
  const line = (r: readonly string[]) =>
    indent +
    r
      .map((c, i) => {
        const pad = " ".repeat(widths[i]! - width(c));
        if (options.align?.[i] === "right") return pad + c;
        return i === r.length - 1 ? c : c + pad;
      })
      .join(gap)
      .trimEnd();
  const out: string[] = [];
  if (options.header) {
    out.push(line(all[0]!));
    out.push(line(widths.map((w) => "-".repeat(w))));
  }
  for (const r of all.slice(options.header ? 1 : 0)) out.push(line(r));
  return out.map((l) => `${l}\n`).join("");
}
