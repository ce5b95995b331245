/**
 * The one parser of /proc/PID/mountinfo (proc(5)), used by every reader: the sandbox
 * model's collector and its cross-check, inspectMount, `userns doctor` and the
 * inventory's search for nsfs bind mounts. Pure: it takes the text.
 *
 * @packageDocumentation
 */

/** One line of mountinfo. */
export interface MountinfoEntry {
  readonly id: number;
  readonly parentId: number;
  /** major:minor of the filesystem. */
  readonly dev: string;
  /** The path of the mount's root within its filesystem. */
  readonly root: string;
  /** The mount point, relative to the reading process's root (for /proc/PID/mountinfo: PID's root). */
  readonly target: string;
  /** Per-mount options (ro/rw, nosuid, nodev, noexec, relatime, idmapped, ...). */
  readonly mountOptions: readonly string[];
  readonly fsType: string;
  readonly source: string;
  /** Per-superblock options. */
  readonly superOptions: string;
  /** `ro` among the per-mount options. */
  readonly readOnly: boolean;
  /** `idmapped` among the per-mount options (Linux 5.12+ shows it there). */
  readonly idmapped: boolean;
}

/** Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`). */
export function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Parses mountinfo text; lines that do not have the format are skipped. */
export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (f.length < 10 || sep < 0 || sep + 3 > f.length) continue;
    const mountOptions = f[5]!.split(",");
    out.push({
      id: Number(f[0]),
      parentId: Number(f[1]),
      dev: f[2]!,
      root: unescapeMountinfo(f[3]!),
      target: unescapeMountinfo(f[4]!),
      mountOptions,
      fsType: f[sep + 1]!,
      source: unescapeMountinfo(f[sep + 2]!),
      superOptions: f[sep + 3] ?? "",
      readOnly: mountOptions.includes("ro"),
      idmapped: mountOptions.includes("idmapped"),
    });
  }
  return out;
}
