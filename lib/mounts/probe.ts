/**
 * Does the filesystem at a path support idmapped mounts on this kernel?
 * Asked for real: a detached clone of the path is made idmapped and thrown
 * away, which never changes any mount table (a detached clone is visible to
 * nobody). The answer is cached per filesystem: statfs f_type + st_dev.
 */
import { statfsSync, statSync } from "node:fs";
import { UsernsError, type UsernsErrorCode } from "../errors.js";
import { native } from "../kernel/native.js";
import { IdMap } from "../model/idmap.js";
import { AT_EMPTY_PATH, AT_FDCWD, FS_MAGIC, MOUNT_ATTR, OPEN_TREE_CLONE } from "./constants.js";
import { fsTypeOf, type IdmapRefusal, idmapError, refusalOf } from "./explain.js";
import { createHelperUserns } from "./helper-userns.js";

/** The probe's answer. */
export interface IdmapSupport {
  /** True when a clone of this filesystem could be idmapped. */
  readonly supported: boolean;
  /** Filesystem type name (from statfs f_type), or its hex magic. */
  readonly fsType: string;
  /** The filesystem's device (st_dev), part of the cache key. */
  readonly dev: bigint;
  /** When not supported: why, as a code. */
  readonly refusal?: IdmapRefusal;
  /** When not supported: the error, whose message says why. */
  readonly error?: UsernsError;
}

const cache = new Map<string, IdmapSupport>();

/** Forgets cached answers (e.g. after a kernel module load). */
export function clearIdmapProbeCache(): void {
  cache.clear();
}

/**
 * Probes whether `path`'s filesystem allows idmapped mounts here. Needs
 * CAP_SYS_ADMIN (open_tree with OPEN_TREE_CLONE); without it the answer is
 * "not supported" with refusal `capability-missing`.
 */
export function probeIdmapSupport(path: string): IdmapSupport {
  const type = Number(statfsSync(path).type);
  const dev = BigInt(statSync(path, { bigint: true }).dev);
  const key = `${type}:${dev}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const fsType = fsTypeOf(path) ?? FS_MAGIC[type] ?? `0x${type.toString(16)}`;
  const b = native();
  let result: IdmapSupport;
  let fd = -1;
  const map = IdMap.of([0, 0, 1]);
  try {
    try {
      fd = b.openTree(AT_FDCWD, path, OPEN_TREE_CLONE);
    } catch (e) {
      throw idmapError(
        `probing idmap support of ${path}`,
        { syscall: "open_tree", code: (e as { code: UsernsErrorCode }).code, sourcePath: path },
        e,
      );
    }
    const ns = createHelperUserns({ uidMap: map, gidMap: map });
    try {
      b.mountSetattr(fd, "", AT_EMPTY_PATH, { attrSet: MOUNT_ATTR.IDMAP, usernsFd: ns.fd });
    } catch (e) {
      throw idmapError(
        `probing idmap support of ${path} (${fsType})`,
        {
          syscall: "mount_setattr",
          code: (e as { code: UsernsErrorCode }).code,
          usernsFd: ns.fd,
          sourcePath: path,
          mapsWritten: true,
        },
        e,
      );
    } finally {
      ns.close();
    }
    result = { supported: true, fsType, dev };
  } catch (e) {
    if (!UsernsError.isUsernsError(e)) throw e;
    const refusal = refusalOf(e);
    result = { supported: false, fsType, dev, error: e, ...(refusal !== undefined ? { refusal } : {}) };
  } finally {
    if (fd >= 0) b.close(fd);
  }
  cache.set(key, result);
  return result;
}
