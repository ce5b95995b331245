/**
 * Capabilities and credentials as security/commoncap.c: cap_capable judges
 * them (spec §1.6). A credential lives in one user namespace and holds an
 * effective set there; it reaches descendants through the owner rule.
 */
import type { UserNs } from "./ns.js";

/** The capability names Linux knows (include/uapi/linux/capability.h), in bit order. */
export const CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
] as const;

/** A capability name such as `"CAP_SETUID"`. */
export type Capability = (typeof CAPABILITIES)[number];

/** True for a name in {@link CAPABILITIES}. */
export function isCapability(name: string): name is Capability {
  return (CAPABILITIES as readonly string[]).includes(name);
}

/** Every capability: the set a namespace creator gets in its new namespace (set_cred_user_ns). */
export const FULL_CAPS: ReadonlySet<Capability> = new Set(CAPABILITIES);
/** No capability. */
export const NO_CAPS: ReadonlySet<Capability> = new Set();

/** The set without the listed capabilities (drop from effective and permitted). */
export function dropCaps(caps: ReadonlySet<Capability>, drop: Iterable<Capability>): ReadonlySet<Capability> {
  const out = new Set(caps);
  for (const c of drop) out.delete(c);
  return out;
}

/** The parts of `struct cred` the id-mapping rules read. */
export interface Cred {
  /** The credential's user namespace (`cred->user_ns`). */
  readonly ns: UserNs;
  /** Effective uid as a kuid. */
  readonly euid: number;
  /** Effective gid as a kgid. */
  readonly egid: number;
  /** fsuid as a kuid (DAC checks); equals euid unless changed. */
  readonly fsuid: number;
  /** fsgid as a kgid. */
  readonly fsgid: number;
  /** The effective capability set, valid in `ns`. */
  readonly caps: ReadonlySet<Capability>;
}

/** A credential with fsuid/fsgid equal to euid/egid. */
export function cred(ns: UserNs, euid: number, egid: number, caps: ReadonlySet<Capability>): Cred {
  return Object.freeze({ ns, euid, egid, fsuid: euid, fsgid: egid, caps });
}

/** Mirrors security/commoncap.c: cap_capable (spec §1.6): does `c` hold `cap` in namespace `target`? */
export function nsCapable(c: Cred, target: UserNs, cap: Capability): boolean {
  let ns: UserNs = target;
  for (;;) {
    if (ns.id === c.ns.id) return c.caps.has(cap);
    if (ns.level <= c.ns.level) return false;
    const parent = ns.parent!;
    if (parent.id === c.ns.id && ns.ownerKuid === c.euid) return true;
    ns = parent;
  }
}

/** Mirrors kernel/capability.c: file_ns_capable: the same test on the opener's credentials (`file->f_cred`). */
export function fileNsCapable(opener: Cred, target: UserNs, cap: Capability): boolean {
  return nsCapable(opener, target, cap);
}
