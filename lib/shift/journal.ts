/**
 * The shift journal: the scanned tree (every inode's owner, group, mode and
 * ownership xattrs before the shift) and the map, written durably at the
 * root of the tree before the first change. With it, an interrupted shift
 * can be finished or undone: every change is a function of this record, so
 * both are "apply the targets again" (lib/shift/plan.ts).
 *
 * The file appears under its final name by rename(2) after fsync, so a
 * journal that exists is complete; its SHA-256 guards against a damaged one.
 *
 * @packageDocumentation
 */
import { createHash } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { UsernsError } from "../errors.js";
import type { InodeXattrs, ScanResult } from "../kernel/shift.js";

/** Name of the journal in the tree's root directory (never part of the shift). */
export const JOURNAL_NAME = ".userns-shift.journal";
/** Name it is written under before it is complete. */
export const JOURNAL_TMP_NAME = ".userns-shift.journal.tmp";
const FORMAT = "userns-shift-journal";

/** What the journal says about the shift besides the tree. */
export interface JournalHeader {
  readonly format: typeof FORMAT;
  readonly version: 1;
  /** "forward" or "reverse", as asked. */
  readonly direction: "forward" | "reverse";
  /** The maps as given (mount direction), uid_map text. */
  readonly uidMap: string;
  readonly gidMap: string;
  /** The maps actually applied (the inverse for "reverse"), uid_map text. */
  readonly appliedUidMap: string;
  readonly appliedGidMap: string;
  readonly force: number | null;
  readonly crossMounts: boolean;
  /** The root's identity, so a journal is never applied to another tree. */
  readonly rootDev: string;
  readonly rootIno: string;
  /** The shift marker on the root before this shift (null: none), restored by a rollback. */
  readonly markerBefore: string | null;
  /** The marker value a completed shift leaves (null: none). */
  readonly markerAfter: string | null;
  readonly count: number;
  readonly payloadBytes: number;
  readonly sha256: string;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function typed(a: Uint32Array | Uint8Array | BigUint64Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** The scan as bytes: length-prefixed columns, then the xattr records. */
export function encodeScan(scan: ScanResult): Buffer {
  const parts: Buffer[] = [u32(scan.count)];
  for (const col of [scan.parent, scan.nameOff, scan.uid, scan.gid, scan.mode, scan.flags, scan.ino] as const) {
    const b = typed(col);
    parts.push(u32(b.length), b);
  }
  parts.push(u32(scan.names.length), scan.names);
  parts.push(u32(scan.xattrs.length));
  for (const x of scan.xattrs) {
    parts.push(u32(x.index));
    for (const v of [x.acl, x.dacl, x.cap]) {
      if (v === undefined) parts.push(u32(0xffffffff));
      else parts.push(u32(v.length), v);
    }
  }
  return Buffer.concat(parts);
}

/** Reads {@link encodeScan}'s bytes back (columns copied, so they are aligned). */
export function decodeScan(buf: Buffer): ScanResult {
  let p = 0;
  const rd = () => {
    const v = buf.readUInt32LE(p);
    p += 4;
    return v;
  };
  const take = (n: number) => {
    if (p + n > buf.length) throw new Error("truncated");
    // A fresh (unpooled, so aligned) copy: the columns are viewed as Uint32Array/BigUint64Array.
    const b = Buffer.alloc(n);
    buf.copy(b, 0, p, p + n);
    p += n;
    return b;
  };
  const count = rd();
  const u32col = () => {
    const b = take(rd());
    return new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
  };
  const parent = u32col();
  const nameOff = u32col();
  const uid = u32col();
  const gid = u32col();
  const mode = u32col();
  const fb = take(rd());
  const flags = new Uint8Array(fb.buffer, fb.byteOffset, fb.length);
  const ib = take(rd());
  const ino = new BigUint64Array(ib.buffer, ib.byteOffset, ib.length / 8);
  const names = take(rd());
  const nx = rd();
  const xattrs: InodeXattrs[] = [];
  for (let k = 0; k < nx; k++) {
    const x: InodeXattrs = { index: rd() };
    for (const key of ["acl", "dacl", "cap"] as const) {
      const len = rd();
      if (len !== 0xffffffff) x[key] = take(len);
    }
    xattrs.push(x);
  }
  if (parent.length !== count || nameOff.length !== count + 1 || ino.length !== count) throw new Error("inconsistent");
  return {
    count,
    parent,
    nameOff,
    names,
    uid,
    gid,
    mode,
    nlink: new Uint32Array(count),
    flags,
    ino,
    dev: new BigUint64Array(count),
    xattrs,
    badXattrs: [],
    skippedMounts: [],
  };
}

/** Writes the journal durably: a temporary name, fsync, rename, fsync of the directory. */
export function writeJournal(
  root: string,
  header: Omit<JournalHeader, "format" | "version" | "count" | "payloadBytes" | "sha256">,
  scan: ScanResult,
): void {
  const payload = encodeScan(scan);
  const full: JournalHeader = {
    format: FORMAT,
    version: 1,
    ...header,
    count: scan.count,
    payloadBytes: payload.length,
    sha256: createHash("sha256").update(payload).digest("hex"),
  };
  const tmp = join(root, JOURNAL_TMP_NAME);
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(full)}\n`);
    let off = 0;
    while (off < payload.length) off += writeSync(fd, payload, off, payload.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(root, JOURNAL_NAME));
  fsyncDir(root);
}

/** fsync of a directory, so a rename or unlink in it is durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Reads and checks the journal at the root; undefined when there is none. */
export function readJournal(root: string): { header: JournalHeader; scan: ScanResult } | undefined {
  const path = join(root, JOURNAL_NAME);
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const nl = buf.indexOf(10);
  const bad = (reason: string) =>
    new UsernsError(`reading the shift journal ${path}`, { code: "ERR_USERNS_SHIFT_JOURNAL", path, reason });
  if (nl < 0) throw bad("no header line");
  let header: JournalHeader;
  try {
    header = JSON.parse(buf.toString("utf8", 0, nl)) as JournalHeader;
  } catch {
    throw bad("the header is not JSON");
  }
  if (header.format !== FORMAT || header.version !== 1) throw bad("not a userns shift journal of version 1");
  const payload = buf.subarray(nl + 1);
  if (payload.length !== header.payloadBytes)
    throw bad(`${payload.length} payload bytes, the header says ${header.payloadBytes}`);
  if (createHash("sha256").update(payload).digest("hex") !== header.sha256)
    throw bad("the payload's SHA-256 does not match");
  try {
    return { header, scan: decodeScan(payload) };
  } catch (e) {
    throw bad(`the payload does not decode (${(e as Error).message})`);
  }
}

/** Removes the journal (and a leftover temporary one), durably. */
export function removeJournal(root: string): void {
  for (const n of [JOURNAL_NAME, JOURNAL_TMP_NAME]) {
    try {
      unlinkSync(join(root, n));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
  fsyncDir(root);
}
