/**
 * /proc/PID/mountinfo (proc(5)), parsed once for every reader (inspectMount,
 * `userns doctor`). One line per mount:
 * `id parent major:minor root mount-point options [optional...] - fstype source super-options`.
 * Paths are unescaped (the kernel writes space, tab, newline and backslash
 * as octal `\040` ...). Lines without the ` - ` separator are skipped. Pure:
 * no I/O.
 */

/** One mount as mountinfo lists it. */
export interface MountinfoEntry {
  readonly mountId: number;
  readonly parentId: number;
  /** `major:minor` of the filesystem's device. */
  readonly device: string;
  /** The root of the mount within its filesystem, unescaped. */
  readonly root: string;
  /** The mount point relative to the reader's root, unescaped. */
  readonly mountPoint: string;
  /** Per-mount options (`rw`, `nosuid`, `idmapped` ...). */
  readonly options: readonly string[];
  /** Optional fields (`shared:1`, `master:2` ...). */
  readonly optional: readonly string[];
  readonly fsType: string;
  /** Mount source, unescaped. */
  readonly source: string;
  /** Per-superblock options. */
  readonly superOptions: readonly string[];
}

/** Undoes mountinfo's octal escapes (`\040` is a space). */
export function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Parses mountinfo text; lines that are not mount lines are skipped. */
export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const right = line.slice(sep + 3).split(" ");
    out.push({
      mountId: Number(left[0]),
      parentId: Number(left[1]),
      device: left[2] ?? "",
      root: unescapeMountinfo(left[3] ?? ""),
      mountPoint: unescapeMountinfo(left[4] ?? ""),
      options: (left[5] ?? "").split(",").filter((o) => o !== ""),
      optional: left.slice(6),
      fsType: right[0] ?? "",
      source: unescapeMountinfo(right[1] ?? ""),
      superOptions: (right[2] ?? "").split(",").filter((o) => o !== ""),
    });
  }
  return out;
}
