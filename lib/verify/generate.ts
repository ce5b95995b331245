/**
 * Seeded generators of §1 map-write cases, random and adversarial, covering
 * every input field: map-text format edge cases, u32 limits, overlaps and
 * adjacency, the 5/340 extent limits, parent chains with straddling ranges,
 * credential splits with dropped capabilities, setgroups before and after,
 * second writes, and the three map kinds. The same seed gives the same cases.
 */

/** A small, fast, seedable PRNG (mulberry32). */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  /** Picks by weight: `[[weight, value], ...]`. */
  weighted<T>(xs: readonly (readonly [number, T])[]): T {
    const total = xs.reduce((a, [w]) => a + w, 0);
    let r = this.next() * total;
    for (const [w, v] of xs) {
      r -= w;
      if (r < 0) return v;
    }
    return xs[xs.length - 1]![1];
  }
}

/** A generated case: a plain JSON object in the §1 input format. */
export type CaseObject = Record<string, unknown>;

const U32_MAX = 4294967295;
const EDGE_NUMBERS = [
  "0",
  "1",
  "2",
  "65534",
  "65535",
  "65536",
  "4294967294",
  "4294967295",
  "4294967296",
  "4294967297",
  "4294967301",
  "8589934592",
  "18446744073709551615",
  "18446744073709551616",
  "99999999999999999999999",
];
/** The kernel's isspace set (lib/ctype.c), including Latin-1 NBSP 0xA0. */
const SEPARATORS = [" ", "\t", "\v", "\f", "\r", "  ", " \t"];
const CAPS = ["CAP_SETUID", "CAP_SETGID", "CAP_SYS_ADMIN", "CAP_SETFCAP", "CAP_DAC_OVERRIDE", "CAP_CHOWN"];
const SETGROUPS_TEXTS = ["deny", "deny\n", "allow", "allow\n", "denyx", "Deny", "deny   ", "deny    ", "", " deny"];

interface Ext {
  first: number;
  lower: number;
  count: number;
}

function fmt(exts: readonly Ext[], nl = true): string {
  const body = exts.map((e) => `${e.first} ${e.lower} ${e.count}`).join("\n");
  return nl ? `${body}\n` : body;
}

/** A parent map: a few extents over plausible host ranges, 0 mapped or not. */
function parentExtents(r: Rng, within?: readonly Ext[]): Ext[] {
  // Lower ids of a nested level must lie in the level above's upper ranges.
  // A nested level takes a sub-range of one of the level above's extents
  // (mostly valid; sometimes one past its end, which the kernel refuses).
  if (within !== undefined && within.length > 0) {
    const w = r.pick(within);
    const off = r.int(0, Math.min(w.count - 1, 3));
    const room = w.count - off;
    const count = r.chance(0.9) ? r.pick([room, Math.max(1, room - 1), Math.min(room, 1001)]) : room + 1;
    return [{ first: r.pick([0, 0, 0, 1]), lower: w.first + off, count }];
  }
  const shape = r.weighted<string>([
    [4, "one"],
    [3, "two"],
    [1, "three"],
    [1, "no-zero"],
    [1, "many"],
  ]);
  if (shape === "many") {
    // More than 5 extents: the kernel's sorted arrays and binary search.
    const n = r.int(6, 9);
    return Array.from({ length: n }, (_, i) => ({ first: i * 1000, lower: 500000 + (n - i) * 10000, count: 1000 }));
  }
  const base = () => r.pick([100000, 200000, 1000000, 300000]);
  if (shape === "one") return [{ first: 0, lower: base(), count: r.pick([65536, 65536, 2000, 100]) }];
  if (shape === "no-zero") return [{ first: r.pick([1, 1000, 5]), lower: base(), count: r.pick([2000, 100]) }];
  const n = shape === "two" ? 2 : 3;
  const out: Ext[] = [];
  let first = 0;
  for (let i = 0; i < n; i++) {
    const count = r.pick([1001, 1000, 10, 1, 500]);
    const lower = r.pick([100000, 200000, 300000, 400000]) + i * 2000 + r.int(0, 3) * 7;
    out.push({ first, lower, count });
    first += count;
  }
  // Lower ranges must not overlap in a valid parent map.
  const seen: Ext[] = [];
  return out.filter((e) => {
    const clash = seen.some((s) => e.lower < s.lower + s.count && s.lower < e.lower + e.count);
    if (!clash) seen.push(e);
    return !clash;
  });
}

/** Extents valid against the parent's upper ranges (or init), with straddling and edge variants. */
function childExtents(r: Rng, parent: readonly Ext[] | undefined, n: number): Ext[] {
  const out: Ext[] = [];
  let upper = r.pick([0, 0, 0, 1, 5, 1000]);
  for (let i = 0; i < n; i++) {
    let lower: number;
    let count: number;
    if (parent === undefined || parent.length === 0) {
      lower = r.weighted([
        [5, 100000 + i * 100],
        [2, r.int(0, 200000)],
        [1, 0],
        [1, U32_MAX - 1 - r.int(0, 5)],
      ]);
      count = r.weighted([
        [5, r.int(1, 100)],
        [1, 1],
        [1, 65536],
      ]);
    } else {
      const p = r.pick(parent);
      const mode = r.weighted<string>([
        [6, "inside"],
        [2, "straddle"],
        [1, "edge"],
        [1, "outside"],
      ]);
      if (mode === "inside") {
        const off = r.int(0, Math.max(0, p.count - 1));
        lower = p.first + off;
        count = r.int(1, Math.max(1, Math.min(p.count - off, 100)));
      } else if (mode === "straddle") {
        lower = p.first + Math.max(0, p.count - r.int(1, 3));
        count = r.int(2, 10);
      } else if (mode === "edge") {
        lower = p.first;
        count = p.count + r.pick([0, 0, 1]);
      } else {
        lower = p.first + p.count + r.int(0, 5000);
        count = r.int(1, 10);
      }
    }
    out.push({ first: upper, lower, count });
    upper +=
      count +
      r.weighted([
        [5, 0],
        [3, r.int(1, 50)],
        [1, -1],
      ]);
    if (upper < 0) upper = 0;
  }
  return out;
}

/** Applies one textual mutation to valid map text: the parser's edge cases. */
function mutateFormat(r: Rng, text: string): { text?: string; hex?: string } {
  const lines = text.replace(/\n$/, "").split("\n");
  const m = r.weighted<string>([
    [3, "separators"],
    [2, "leading-ws"],
    [2, "trailing-ws"],
    [2, "leading-zeros"],
    [1, "sign"],
    [1, "hex-prefix"],
    [1, "extra-field"],
    [1, "missing-field"],
    [2, "empty-line"],
    [1, "no-newline"],
    [1, "crlf"],
    [2, "nul"],
    [2, "edge-number"],
    [1, "nbsp"],
    [1, "junk"],
    [1, "empty"],
  ]);
  const li = r.int(0, lines.length - 1);
  const fields = (lines[li] ?? "").split(" ");
  const fi = r.int(0, Math.max(0, fields.length - 1));
  const setLine = (s: string) => {
    lines[li] = s;
  };
  switch (m) {
    case "separators":
      setLine(fields.join(r.pick(SEPARATORS)));
      break;
    case "leading-ws":
      setLine(r.pick([" ", "\t", "   ", "\v"]) + lines[li]);
      break;
    case "trailing-ws":
      setLine(lines[li] + r.pick([" ", "\t", "\r", "  \t"]));
      break;
    case "leading-zeros":
      fields[fi] = "0".repeat(r.int(1, 12)) + fields[fi];
      setLine(fields.join(" "));
      break;
    case "sign":
      fields[fi] = r.pick(["+", "-"]) + fields[fi];
      setLine(fields.join(" "));
      break;
    case "hex-prefix":
      fields[fi] = `0x${fields[fi]}`;
      setLine(fields.join(" "));
      break;
    case "extra-field":
      setLine(`${lines[li]} ${r.pick(["0", "1", "x"])}`);
      break;
    case "missing-field":
      setLine(fields.slice(0, r.int(1, 2)).join(" ") + r.pick(["", " "]));
      break;
    case "empty-line":
      lines.splice(r.int(0, lines.length), 0, "");
      break;
    case "no-newline":
      return { text: lines.join("\n") };
    case "crlf":
      return { text: `${lines.join("\r\n")}\r\n` };
    case "nul": {
      const joined = `${lines.join("\n")}\n`;
      const at = r.int(0, joined.length);
      return { text: `${joined.slice(0, at)}\u0000${r.pick(["", "1 1 1\n", "junk"])}${joined.slice(at)}` };
    }
    case "edge-number":
      fields[fi] = r.pick(EDGE_NUMBERS);
      setLine(fields.join(" "));
      break;
    case "nbsp": {
      // A lone 0xA0 byte is not UTF-8: lines_hex carries it.
      const bytes = Buffer.from(`${lines.join("\n")}\n`, "latin1");
      const sp = bytes.indexOf(0x20);
      if (sp >= 0) bytes[sp] = 0xa0;
      return { hex: bytes.toString("hex") };
    }
    case "junk":
      setLine(`${lines[li]}${r.pick(["a", "#", ",", ".5"])}`);
      break;
    case "empty":
      return { text: r.pick(["", "\n", " ", "\n\n"]) };
  }
  return { text: `${lines.join("\n")}\n` };
}

/** Pads map text to exactly `size` bytes with leading spaces on its first line. */
function padTo(text: string, size: number): string {
  return " ".repeat(Math.max(0, size - text.length)) + text;
}

/** `n` adjacent one-id extents with short numbers, so 340 of them fit in a page. */
function manyExtents(r: Rng, n: number, lowerBase: number): Ext[] {
  const out: Ext[] = [];
  const reversed = r.chance(0.3);
  for (let i = 0; i < n; i++) out.push({ first: i, lower: lowerBase + i, count: 1 });
  if (reversed) out.reverse();
  if (r.chance(0.2) && n > 1) {
    // Overlap one pair: the duplicate is refused wherever it lands.
    const k = r.int(1, n - 1);
    out[k] = { ...out[k]!, first: out[k - 1]!.first };
  }
  return out;
}

function pickDrops(r: Rng): string[] {
  const n = r.int(1, 2);
  const out = new Set<string>();
  for (let i = 0; i < n; i++) out.add(r.pick(CAPS));
  return [...out];
}

/** The lines of a case, given the child's parent extents (undefined = init) and the writer. */
function genLines(
  r: Rng,
  parent: readonly Ext[] | undefined,
  writer: { role: string; uid: number },
  creatorUid: number,
): { lines?: string; lines_hex?: string } {
  const own = writer.role !== "privileged";
  const strategy = r.weighted<string>([
    [own ? 12 : 3, "single"],
    [8, "valid"],
    [5, "format"],
    [3, "u32"],
    [3, "overlap"],
    [3, "many"],
    [2, "size"],
    [2, "fuzz"],
  ]);
  const lowerOf = (): number => (parent?.[0] ? parent[0].first : 100000);
  switch (strategy) {
    case "valid":
      return { lines: fmt(childExtents(r, parent, r.pick([1, 1, 2, 3, 5, 6]))) };
    case "format": {
      const m = mutateFormat(r, fmt(childExtents(r, parent, r.pick([1, 2, 3]))));
      return m.hex !== undefined ? { lines_hex: m.hex } : { lines: m.text ?? "" };
    }
    case "u32": {
      const e = r.pick<Ext>([
        { first: 0, lower: 0, count: U32_MAX },
        { first: 1, lower: 0, count: U32_MAX },
        { first: 0, lower: 1, count: U32_MAX - 1 },
        { first: U32_MAX - 1, lower: lowerOf(), count: 1 },
        { first: U32_MAX - 1, lower: lowerOf(), count: 2 },
        { first: U32_MAX, lower: lowerOf(), count: 1 },
        { first: 0, lower: U32_MAX, count: 1 },
        { first: 0, lower: U32_MAX - 1, count: 1 },
        { first: 0, lower: lowerOf(), count: 0 },
        { first: 10, lower: lowerOf(), count: U32_MAX - 10 },
      ]);
      return { lines: fmt([e]) };
    }
    case "overlap": {
      const base = lowerOf();
      const a: Ext = { first: 0, lower: base, count: 10 };
      const delta = r.pick([-1, 0, 1, 5, 10, 9, 11]);
      const b = r.chance(0.5)
        ? { first: 10 + (delta - 10), lower: base + 20, count: 10 }
        : { first: 20, lower: base + delta, count: 10 };
      const exts = r.chance(0.3) ? [b, a] : [a, b];
      if (r.chance(0.2)) exts.push({ first: 10, lower: base, count: 10 }); // swap-style
      return { lines: fmt(exts) };
    }
    case "many": {
      const n = r.pick([4, 5, 6, 7, 339, 340, 341]);
      return { lines: fmt(manyExtents(r, n, parent?.[0] ? parent[0].first : r.pick([0, 1000]))) };
    }
    case "fuzz": {
      // Random bytes from the parser's alphabet: digits, every separator, signs, NUL.
      const alphabet = [
        ..."0123456789",
        "0",
        "1",
        " ",
        " ",
        "\t",
        "\n",
        "\n",
        "\v",
        "\f",
        "\r",
        "\xa0",
        "+",
        "-",
        "x",
        "\0",
      ];
      const n = r.int(0, 40);
      const bytes = Buffer.from(Array.from({ length: n }, () => r.pick(alphabet)).join(""), "latin1");
      return { lines_hex: bytes.toString("hex") };
    }
    case "size": {
      const body = fmt(childExtents(r, parent, 1));
      return { lines: padTo(body, r.pick([4094, 4095, 4096, 4097])) };
    }
    default: {
      // The unprivileged single-line form: one id, the opener's own.
      const own = writer.role === "inside" ? creatorUid : writer.uid;
      const lower = r.chance(0.8) ? own : r.pick([0, own + 1, 65534]);
      return { lines: fmt([{ first: r.pick([0, 0, 5, 1000]), lower, count: r.pick([1, 1, 1, 2]) }]) };
    }
  }
}

/** Generates case number `index` of the campaign with seed `seed`. */
export function generateCase(seed: number, index: number): CaseObject {
  const r = new Rng((seed * 0x9e3779b1) ^ (index * 0x85ebca77) ^ 0x5bd1e995);
  const c: CaseObject = { id: `s${seed}-${index}` };
  c.kind = r.weighted([
    [5, "uid"],
    [4, "gid"],
    [1, "projid"],
  ]);

  // Parents: none, one (string or object), or a chain.
  const depth = r.weighted([
    [10, 0],
    [6, 1],
    [2, 2],
    [1, 3],
  ]);
  let deepest: Ext[] | undefined;
  const chain: unknown[] = [];
  for (let i = 0; i < depth; i++) {
    const exts = parentExtents(r, deepest);
    const text = fmt(exts);
    if (r.chance(0.25)) {
      const o: Record<string, unknown> = { uid_map: text, gid_map: r.chance(0.8) ? text : fmt(parentExtents(r)) };
      if (r.chance(0.4)) o.setgroups = "deny";
      chain.push(o);
    } else chain.push(text);
    deepest = exts;
  }
  if (depth === 1 && r.chance(0.7)) c.parent = chain[0];
  else if (depth > 0) c.parent = chain;
  else if (r.chance(0.2)) c.parent = null;

  // Writer, creator, opener.
  const role = r.weighted<string>([
    [10, "privileged"],
    [5, "unprivileged"],
    [5, "inside"],
  ]);
  const uid = r.weighted([
    [60, 1000],
    [20, 65534],
    [10, 0],
    [10, 5],
    [1, 4294967294],
    [1, 4294967295],
  ]);
  let writerUid = 1000;
  if (r.chance(0.3)) {
    const w: Record<string, unknown> = { role };
    if (role === "unprivileged") {
      w.uid = uid;
      w.gid = r.chance(0.8) ? uid : 1000;
      writerUid = uid;
    } else w.drop_caps = pickDrops(r);
    c.writer = w;
  } else c.writer = role;
  let creatorUid = 0;
  if (r.chance(0.25)) {
    const cr = r.weighted<unknown>([
      [3, "privileged"],
      [3, "unprivileged"],
      [2, { role: "privileged", drop_caps: pickDrops(r) }],
      [1, { role: "unprivileged", uid: 65534, gid: 65534 }],
    ]);
    c.creator = cr;
    if (cr === "unprivileged") creatorUid = 1000;
    else if (typeof cr === "object" && (cr as { uid?: number }).uid !== undefined) creatorUid = 65534;
  } else if (role === "unprivileged") creatorUid = writerUid;
  if (r.chance(0.15)) {
    c.opener = r.weighted<unknown>([
      [3, "privileged"],
      [3, "unprivileged"],
      [role === "inside" ? 0 : 2, "inside"],
      [1, { role: "unprivileged", uid: 65534, gid: 65534 }],
      [1, { role: "privileged", drop_caps: pickDrops(r) }],
    ]);
  }

  // The map text itself.
  Object.assign(c, genLines(r, deepest, { role, uid: writerUid }, creatorUid));

  // setgroups before, the second write, setgroups after.
  if (r.chance(c.kind === "gid" ? 0.35 : 0.1))
    c.setgroups = r.weighted([
      [6, "deny"],
      [1, "allow"],
      [3, r.pick(SETGROUPS_TEXTS)],
    ]);
  if (r.chance(0.15)) {
    c.second = r.weighted([
      [3, "0 0 1\n"],
      [2, typeof c.lines === "string" ? c.lines : "1 1 1\n"],
      [1, ""],
    ]);
    c.second_fd = r.pick(["same", "reopen", "pwrite0", "same"]);
  }
  if (r.chance(0.1)) c.setgroups_after = r.pick(["deny", "allow", "deny\n"]);
  return c;
}

/** `count` cases of seed `seed`, starting at case `start`. */
export function generateCases(seed: number, count: number, start = 0): CaseObject[] {
  return Array.from({ length: count }, (_, i) => generateCase(seed, start + i));
}
