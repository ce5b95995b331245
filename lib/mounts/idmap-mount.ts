/**
 * Idmapped mounts (spec §8): a detached clone of a tree made idmapped with
 * the maps of a user namespace, then attached, unmounted and closed.
 *
 * Maps are in the MOUNT direction: on-disk id → id seen through the mount
 * (see ./mapformats.ts).
 */
import { UsernsError, type UsernsErrorCode } from "../errors.js";
import { native } from "../kernel/native.js";
import type { IdMap } from "../model/idmap.js";
import { UserNamespace } from "../namespaces/user-namespace.js";
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_RECURSIVE,
  MNT_DETACH,
  MOUNT_ATTR,
  MOVE_MOUNT_F_EMPTY_PATH,
  OPEN_TREE_CLONE,
  PROPAGATION,
  type Propagation,
} from "./constants.js";
import { idmapError, pathIsIdmapped } from "./explain.js";
import type { UsernsFdHolder } from "./helper-userns.js";
import { type MountIdmap, toIdMap } from "./mapformats.js";

/** Where the idmap comes from: a held user namespace, or maps (then a namespace is made, used and released). */
export interface IdmapSource {
  /** A held user namespace (anything with a readonly nsfs `fd`); its maps become the mount's. */
  userns?: UsernsFdHolder;
  /** uid map in the mount direction (on-disk → seen), as an IdMap or `first lower count` text. */
  uidMap?: IdMap | string;
  /** gid map in the mount direction (on-disk → seen). */
  gidMap?: IdMap | string;
}

/** Options for {@link idmapMount}. */
export interface IdmapMountOptions extends IdmapSource {
  /** Clone the whole subtree and idmap every mount in it (AT_RECURSIVE on open_tree and mount_setattr). */
  recursive?: boolean;
  /** MOUNT_ATTR_RDONLY. */
  readOnly?: boolean;
  /** MOUNT_ATTR_NOSUID. */
  nosuid?: boolean;
  /** MOUNT_ATTR_NODEV. */
  nodev?: boolean;
  /** MOUNT_ATTR_NOEXEC. */
  noexec?: boolean;
  /** Propagation of the new mount. */
  propagation?: Propagation;
}

/** Mount ids this library made idmapped, with the maps it set (mount direction). For inspectMount's cross-check. */
export const setMaps: Map<bigint, MountIdmap> = new Map();

function attrFlags(o: IdmapMountOptions): number {
  let f = 0;
  if (o.readOnly) f |= MOUNT_ATTR.RDONLY;
  if (o.nosuid) f |= MOUNT_ATTR.NOSUID;
  if (o.nodev) f |= MOUNT_ATTR.NODEV;
  if (o.noexec) f |= MOUNT_ATTR.NOEXEC;
  return f;
}

/** Runs `fn` with a user-namespace fd for the idmap: the given one, or a helper made from the maps. */
function withUserns<T>(src: IdmapSource, fn: (fd: number, maps: MountIdmap | undefined) => T): T {
  if (src.userns !== undefined) {
    if (src.uidMap !== undefined || src.gidMap !== undefined) {
      throw new UsernsError("making an idmapped mount: give either userns or uidMap/gidMap, not both", {
        code: "ERR_USERNS_USAGE",
      });
    }
    return fn(src.userns.fd, undefined);
  }
  if (src.uidMap === undefined || src.gidMap === undefined) {
    throw new UsernsError("making an idmapped mount: give userns, or both uidMap and gidMap", {
      code: "ERR_USERNS_USAGE",
    });
  }
  const maps = { uid: toIdMap(src.uidMap), gid: toIdMap(src.gidMap) };
  // An empty map is left unwritten (a zero-byte write is not "no map"), so the kernel's own refusal (§8.2 #19) shows.
  // Not cached: the namespace lives only as long as this call needs it.
  const ns = UserNamespace.createSync({
    ...(maps.uid.isEmpty ? {} : { uidMap: maps.uid }),
    ...(maps.gid.isEmpty ? {} : { gidMap: maps.gid }),
    cache: false,
  });
  try {
    return fn(ns.fd, maps);
  } finally {
    ns.close();
  }
}

function mountIdOfFd(fd: number): bigint | undefined {
  try {
    return native().mountIdOf(fd, "", AT_EMPTY_PATH).mountId;
  } catch {
    return undefined;
  }
}

/**
 * An idmapped mount: detached until {@link IdmappedMount.attach}. Holds an
 * O_CLOEXEC fd to the mount; {@link IdmappedMount.close} releases it (a
 * detached mount then disappears; an attached one stays until unmounted).
 */
export class IdmappedMount {
  /** The mount fd (open_tree). Usable as a dirfd for *at() calls, also while detached. */
  readonly fd: number;
  /** The maps the library set, in the mount direction, when it knows them (not when a held namespace was given). */
  readonly maps: MountIdmap | undefined;
  /** The source path it was cloned from. */
  readonly source: string;
  /** Whether the clone was recursive. */
  readonly recursive: boolean;
  private target: string | undefined;
  private closed = false;
  /** The mount id under which `maps` is recorded for inspectMount's cross-check. */
  private recordedId: bigint | undefined;

  /** @internal */
  constructor(fd: number, source: string, recursive: boolean, maps: MountIdmap | undefined) {
    this.fd = fd;
    this.source = source;
    this.recursive = recursive;
    this.maps = maps;
    if (maps !== undefined) {
      this.recordedId = mountIdOfFd(fd);
      if (this.recordedId !== undefined) setMaps.set(this.recordedId, maps);
    }
  }

  /** The path it is attached at, or undefined while detached. */
  get attachedAt(): string | undefined {
    return this.target;
  }

  /** The unique mount id (statx STATX_MNT_ID_UNIQUE), when the kernel reports one. */
  get mountId(): bigint | undefined {
    return mountIdOfFd(this.fd);
  }

  private live(what: string): void {
    if (this.closed) throw new UsernsError(`${what}: the mount fd is closed`, { code: "EBADF" });
  }

  /**
   * Attaches the mount at `target` in the caller's mount namespace
   * (move_mount). In the initial mount namespace this mounts on the host.
   */
  attach(target: string): void {
    this.live(`attaching the idmapped mount of ${this.source}`);
    try {
      native().moveMount(this.fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
    } catch (e) {
      const code = (e as { code?: UsernsErrorCode }).code ?? "EIO";
      throw new UsernsError(`attaching the idmapped mount of ${this.source} at ${target}`, {
        code,
        syscall: "move_mount",
        step: "attach",
        path: target,
        cause: e,
      });
    }
    this.target = target;
  }

  /**
   * Unmounts it from where it was attached, and closes the fd: the fd pins
   * the mount, so a plain umount2 would fail with EBUSY while it is open.
   * `{lazy: true}` uses MNT_DETACH (for mounts still in use by others).
   */
  unmount(opts: { lazy?: boolean } = {}): void {
    const t = this.target;
    this.close();
    if (t === undefined) return;
    try {
      native().umount2(t, opts.lazy ? MNT_DETACH : 0);
    } catch (e) {
      throw new UsernsError(`unmounting the idmapped mount of ${this.source} from ${t}`, {
        code: (e as { code?: UsernsErrorCode }).code ?? "EIO",
        syscall: "umount2",
        step: "unmount",
        path: t,
        cause: e,
      });
    }
    this.target = undefined;
    if (this.recordedId !== undefined) setMaps.delete(this.recordedId);
  }

  /**
   * A new detached clone of this mount with its idmap replaced
   * (open_tree_attr with attr_clr = attr_set = IDMAP; Linux 6.15+). This
   * mount is left as it is.
   */
  reidmap(src: IdmapSource): IdmappedMount {
    this.live(`re-idmapping the mount of ${this.source}`);
    const flags = AT_EMPTY_PATH | OPEN_TREE_CLONE | (this.recursive ? AT_RECURSIVE : 0);
    return withUserns(src, (usernsFd, maps) => {
      let fd: number;
      try {
        fd = native().openTreeAttr(this.fd, "", flags, {
          attrSet: MOUNT_ATTR.IDMAP,
          attrClr: MOUNT_ATTR.IDMAP,
          usernsFd,
        });
      } catch (e) {
        const code = (e as { code?: UsernsErrorCode }).code ?? "EIO";
        throw idmapError(
          `replacing the idmap of the mount of ${this.source}`,
          { syscall: "open_tree_attr", code, usernsFd, sourcePath: this.source },
          e,
        );
      }
      return new IdmappedMount(fd, this.source, this.recursive, maps);
    });
  }

  /** Closes the fd. A detached mount is freed; an attached one stays until {@link unmount}. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // The library's record is kept while the mount stays attached (inspectMount cross-checks it).
    if (this.recordedId !== undefined && this.target === undefined) setMaps.delete(this.recordedId);
    native().close(this.fd);
  }

  /** For `using` declarations: unmounts (if attached) and closes. */
  [Symbol.dispose](): void {
    this.unmount({ lazy: true });
  }
}

function cloneError(source: string, e: unknown): UsernsError {
  const code = (e as { code?: UsernsErrorCode }).code ?? "EIO";
  return idmapError(`cloning ${source} for an idmapped mount`, { syscall: "open_tree", code, sourcePath: source }, e);
}

function setattrError(
  source: string,
  recursive: boolean,
  e: unknown,
  usernsFd: number,
  maps: MountIdmap | undefined,
): UsernsError {
  const code = (e as { code?: UsernsErrorCode }).code ?? "EIO";
  return idmapError(
    `idmapping the clone of ${source}`,
    {
      syscall: "mount_setattr",
      code,
      usernsFd,
      sourcePath: source,
      recursive,
      ...(code === "EPERM" ? { alreadyIdmapped: pathIsIdmapped(source) === true } : {}),
      ...(maps !== undefined ? { mapsWritten: !maps.uid.isEmpty && !maps.gid.isEmpty } : {}),
    },
    e,
  );
}

/**
 * Makes a detached idmapped mount of `source`: open_tree(OPEN_TREE_CLONE)
 * then mount_setattr(MOUNT_ATTR_IDMAP) (spec §8.1). The maps go in the
 * mount direction: on-disk id → id seen through the mount.
 *
 * @example
 * ```ts
 * const m = idmapMount("/srv/layer", { uidMap: "0 100000 65536", gidMap: "0 100000 65536" });
 * m.attach("/run/ctr/rootfs"); // on-disk 0 now shows as 100000
 * ```
 */
export function idmapMount(source: string, options: IdmapMountOptions): IdmappedMount {
  const recursive = options.recursive === true;
  const rec = recursive ? AT_RECURSIVE : 0;
  const propagation = options.propagation !== undefined ? PROPAGATION[options.propagation] : 0;
  const attrSet = MOUNT_ATTR.IDMAP | attrFlags(options);
  const b = native();
  if (options.userns !== undefined && options.uidMap === undefined && options.gidMap === undefined) {
    // A held namespace: both syscalls in one native call, since churn is bound by per-call cost
    // (scripts/bench/mount.mjs).
    let fd: number;
    try {
      fd = b.cloneIdmapped(
        AT_FDCWD,
        source,
        OPEN_TREE_CLONE | rec,
        AT_EMPTY_PATH | rec,
        attrSet,
        0,
        propagation,
        options.userns.fd,
      );
    } catch (e) {
      throw (e as { syscall?: string }).syscall === "mount_setattr"
        ? setattrError(source, recursive, e, options.userns.fd, undefined)
        : cloneError(source, e);
    }
    return new IdmappedMount(fd, source, recursive, undefined);
  }
  // Maps given: clone first, so that a missing source or capability is reported before a namespace is made for it.
  let fd: number;
  try {
    fd = b.openTree(AT_FDCWD, source, OPEN_TREE_CLONE | rec);
  } catch (e) {
    throw cloneError(source, e);
  }
  try {
    return withUserns(options, (usernsFd, maps) => {
      try {
        b.mountSetattr(fd, "", AT_EMPTY_PATH | rec, { attrSet, propagation, usernsFd });
      } catch (e) {
        throw setattrError(source, recursive, e, usernsFd, maps);
      }
      return new IdmappedMount(fd, source, recursive, maps);
    });
  } catch (e) {
    b.close(fd);
    throw e;
  }
}
