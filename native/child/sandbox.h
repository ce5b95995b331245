// The sandbox's child-side operations: building a new root, mounts inside it,
// pivot_root, hostname, capabilities, seccomp, loopback, the reaping pid 1.
// Everything here runs in the spawned child between clone3 and execve, with
// raw syscalls only (no malloc, no locks, no N-API: see native/child/child.h's
// contract). The parent (lib/sandbox/prepare.ts) prepared every path, string,
// flag and fd; these functions only carry them out, in order.
//
// Each returns 0 or a negative code: -(errno | stage << 12), where the stage
// says which part of the operation failed (kStage*), so that the parent can
// name it ("source does not exist" rather than a bare ENOENT).
#pragma once
#include <cstddef>
#include <cstdint>

namespace userns {
namespace child {

// Which part of an operation failed (bits 12.. of the error code).
enum SandboxStage : int {
  kStageNone = 0,
  kStageSource = 1,      // the source (open_tree, stat) on the host side
  kStageParents = 2,     // resolving or creating the destination's parents
  kStageMountpoint = 3,  // creating the mountpoint (dir 0755 / file 0444)
  kStageCreate = 4,      // making the filesystem (fsopen, fsconfig, fsmount)
  kStageAttach = 5,      // move_mount onto the destination
  kStageAttr = 6,        // mount_setattr (read-only, nodev, nosuid)
  kStageWrite = 7,       // writing a file's content
  kStageExists = 8,      // the destination exists and is something else
  kStageResolve = 9,     // resolving an existing destination (chmod, remount)
  kStageBase = 10,       // the base tmpfs and pivot_root into it
  kStagePivot = 11,      // pivot_root into the new root, detaching the old
  kStageProcSys = 12,    // /proc/sys/user/max_user_namespaces
  kStageMaps = 13,       // the nested user namespace's maps
};

inline long StageError(long negErr, int stage) { return negErr < 0 ? -((-negErr) | (stage << 12)) : negErr; }

// Filesystem sub-operations (bits 0-7 of a step's `a`).
enum FsSubop : int {
  kFsBind = 1,        // s2: source path (host, under /oldroot); flags kFsRo, kFsDevices, kFsOptional, kFsSrcInRoot
  kFsNewMount = 2,    // s2: "type\0key\0value\0..." (empty value: a flag); b: MOUNT_ATTR_* for fsmount
  kFsDev = 3,         // a minimal /dev at dest
  kFsDir = 4,         // mode
  kFsSymlink = 5,     // s2: the link's content
  kFsFile = 6,        // b: fd to read the content from; mode; kFsBindRw/kFsRo: s2 is a scratch path in the base
  kFsChmod = 7,       // mode
  kFsRemountRo = 8,   //
  kFsAttach = 9,      // b: a detached mount's fd
};

// Flags (bits 8-15 of `a`).
enum FsFlag : int {
  kFsRo = 1 << 0,
  kFsDevices = 1 << 1,
  kFsOptional = 1 << 2,
  kFsSrcInRoot = 1 << 3,  // the bind's source is a path inside the new root (e.g. /proc/sys over itself)
  kFsInBase = 1 << 4,     // dest is relative to the base tmpfs, not the new root (scratch space)
  kFsBindFile = 1 << 5,   // kFsFile: bind a scratch file instead of writing into the new root
};

// State kept across the sandbox steps, on the stack of the step interpreter.
struct SandboxState {
  long oldUmask = -1;
  int procFd = -1;  // the host's /proc (under /oldroot) while it is there, O_PATH
  bool pivoted = false;
  bool stacked = false;  // kBaseStacked: no base; the root bind sits over "/"
  long rootFd = -1;      // stacked: that bind, once attached (the new root)
};

// SandboxBase's mode (the step's a).
enum : int64_t {
  // The plan starts with a bind at "/" and mounts nothing else there, needs no
  // scratch space on a base, and its host paths are given as they are on the
  // host (no /oldroot prefix): the bind goes over "/" and becomes the root.
  kBaseStacked = 1,
};

// mount a tmpfs on /tmp, pivot_root into it (old root at /oldroot), and a
// tmpfs at /newroot: the sandbox's root. umask 0 until SandboxPivot.
// With kBaseStacked, only the umask and the /proc fd: see sandbox.cc.
long SandboxBase(SandboxState *st, int64_t mode);
// One filesystem operation; `a` packs subop | flags << 8 | mode << 16.
long SandboxFs(SandboxState *st, int64_t a, int64_t b, const char *dest, const char *s2, size_t s2len);
// Make /newroot (stacked: the root bind) the root (pivot_root(".", ".")), detach
// the old root stacked on it (the base with /oldroot below it, or the host's root), chdir "/".
long SandboxPivot(SandboxState *st);
long SandboxHostname(const char *name, size_t len);
// Keep `keep` (a bit per capability) in every set up to lastCap, bounding and ambient included.
// With `clamp`, `keep` is cut to the permitted set first ("all": what can be held).
long SandboxCapabilities(uint64_t keep, int lastCap, bool clamp);
long SandboxKeepCaps();
long SandboxNoNewPrivs();
long SandboxSeccomp(const char *prog, size_t len);
long SandboxLoopback();
// user.max_user_namespaces = 1 in this namespace, then a nested user namespace
// that maps insideUid/insideGid (-1: the same ids) to this process's ids.
long SandboxDisableUserns(SandboxState *st, int64_t insideUid, int64_t insideGid);
// Forks the program's process (which returns 0 and goes on with the next
// steps); this process stays as the reaping pid 1 and never returns.
// `keepFd` is the error pipe (closed here once the program exists).
long SandboxReaper(int errFd);

}  // namespace child
}  // namespace userns
