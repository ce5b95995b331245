/**
 * /etc/subuid and /etc/subgid (subuid(5)): `<login name or uid>:<start>:<count>`
 * per line; several lines per owner are allowed; `#` comments and blank
 * lines are skipped. Pure: no I/O. Bad lines are reported, not skipped
 * silently (shadow itself ignores them, which hides mistakes).
 */
import { U32_RANGE } from "../model/u32.js";

/** One delegation line. */
export interface SubidEntry {
  /** Login name or numeric uid, as written. */
  readonly owner: string;
  /** First subordinate id. */
  readonly start: number;
  /** Number of ids, ≥ 1. */
  readonly count: number;
  /** 1-based line number in its file. */
  readonly line: number;
}

/** A line that is not a valid delegation. */
export interface SubidIssue {
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

/** Result of parsing one file. */
export interface SubidFile {
  readonly entries: readonly SubidEntry[];
  readonly issues: readonly SubidIssue[];
}

/** Parses subuid/subgid text; never throws. */
export function parseSubid(text: string): SubidFile {
  const entries: SubidEntry[] = [];
  const issues: SubidIssue[] = [];
  const lines = text.split("\n");
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    const t = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (t.trim() === "" || t.trimStart().startsWith("#")) return;
    const parts = t.split(":");
    if (parts.length !== 3) {
      issues.push({ line, column: 1, message: `expected owner:start:count, got ${parts.length} fields` });
      return;
    }
    const [owner, s, c] = parts as [string, string, string];
    if (owner === "" || /\s/.test(owner)) {
      issues.push({ line, column: 1, message: `bad owner ${JSON.stringify(owner)}` });
      return;
    }
    const num = (x: string, col: number, what: string): number | undefined => {
      if (!/^[0-9]{1,10}$/.test(x) || Number(x) >= U32_RANGE) {
        issues.push({
          line,
          column: col,
          message: `${what}: expected a decimal number below 2^32, got ${JSON.stringify(x)}`,
        });
        return undefined;
      }
      return Number(x);
    };
    const start = num(s, owner.length + 2, "start");
    if (start === undefined) return;
    const count = num(c, owner.length + s.length + 3, "count");
    if (count === undefined) return;
    if (count === 0) {
      issues.push({ line, column: owner.length + s.length + 3, message: "count must be at least 1" });
      return;
    }
    if (start + count > U32_RANGE) {
      issues.push({ line, column: owner.length + 2, message: `range ${start}+${count} runs past 4294967295` });
      return;
    }
    entries.push({ owner, start, count, line });
  });
  return { entries, issues };
}

/** A subid line. */
export function formatSubidLine(owner: string, start: number, count: number): string {
  return `${owner}:${start}:${count}\n`;
}
