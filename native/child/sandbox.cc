// Child-side sandbox operations (see sandbox.h). Raw syscalls only: every
// buffer is on the stack, every string and fd was prepared by the parent.
#include "sandbox.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <linux/sched.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>

#include "reap.h"
#include "sys.h"

#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef MNT_DETACH
#define MNT_DETACH 2
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace userns {
namespace child {

namespace {

constexpr unsigned long kMsNosuid = 2, kMsNodev = 4, kMsRec = 0x4000;
constexpr int kPathMax = 4096;

// The new root and the base tmpfs, as the child sees them between SandboxBase and SandboxPivot.
const char kNewRoot[] = "/newroot";

CHILD_FN size_t Len(const char *s) {
  size_t n = 0;
  while (s[n] != 0) n++;
  return n;
}

CHILD_FN bool Eq(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return false;
  return true;
}

// Writes the decimal form of v (non-negative) at p; returns the length.
CHILD_FN size_t Itoa(char *p, long v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
  return n;
}

CHILD_FN void Close(long fd) {
  if (fd >= 0) Sys(__NR_close, fd);
}

// openat2 with resolution confined to `root`: ".." stops at it, absolute
// symlinks start from it, and magic links (/proc/PID/fd/...) are refused, so a
// symlink planted inside the new root can never lead a mount outside it.
CHILD_FN long OpenIn(long root, const char *rel, long flags, long mode = 0) {
  struct open_how how;
  how.flags = static_cast<unsigned long long>(flags) | O_CLOEXEC;
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? static_cast<unsigned long long>(mode) : 0;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return Sys(__NR_openat2, root, reinterpret_cast<long>(rel[0] == 0 ? "." : rel), reinterpret_cast<long>(&how),
             sizeof how);
}

// The new root (or, kFsInBase, the base), opened O_PATH. Stacked (no base): the
// root bind stacked over the old root once it is there (no path leads to it:
// a walk from "/" does not cross a mount on its starting point), the old root
// before it (only the root bind itself resolves its destination then).
CHILD_FN long OpenRoot(const SandboxState *st, int flags) {
  if (st->stacked && !(flags & kFsInBase)) {
    if (st->rootFd >= 0) return Sys(__NR_fcntl, st->rootFd, F_DUPFD_CLOEXEC, 0);
    return Sys(__NR_openat, AT_FDCWD, reinterpret_cast<long>("/"), O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  return Sys(__NR_openat, AT_FDCWD, reinterpret_cast<long>((flags & kFsInBase) ? "/" : kNewRoot),
             O_PATH | O_DIRECTORY | O_CLOEXEC);
}

// A resolved destination: the directory that holds it and its last component.
struct Dest {
  long root = -1;
  long parent = -1;
  const char *rel = "";
  char leaf[256];  // NAME_MAX + 1
  bool isRoot = false;
};

CHILD_FN void DestClose(Dest *d) {
  if (d->parent != d->root) Close(d->parent);
  Close(d->root);
  d->parent = d->root = -1;
}

// Resolves the parents of `rel` inside the root, creating missing ones with
// `parentMode` (bwrap: 0755), each through the previous one, so that every
// step of the walk stays inside the root.
CHILD_FN long ResolveParents(const SandboxState *st, Dest *d, int flags, const char *rel, long parentMode) {
  d->rel = rel;
  d->root = OpenRoot(st, flags);
  if (d->root < 0) return d->root;
  d->parent = d->root;
  size_t n = Len(rel);
  if (n == 0) {
    d->isRoot = true;
    d->leaf[0] = 0;
    return 0;
  }
  if (n >= kPathMax) return -ENAMETOOLONG;
  char buf[kPathMax];
  for (size_t i = 0; i <= n; i++) buf[i] = rel[i];
  // Usually every parent exists already (a bind over a host path inside a
  // bind of /): one openat2 of the whole parent then, not a mkdirat and an
  // openat2 per component. Any failure takes the walk below, which creates
  // what is missing and reports what cannot be, as it always did.
  size_t slash = n;
  while (slash > 0 && buf[slash - 1] != '/') slash--;
  if (slash > 1 && n - slash < sizeof d->leaf) {
    buf[slash - 1] = 0;
    long parent = OpenIn(d->root, buf, O_PATH | O_DIRECTORY);
    buf[slash - 1] = '/';
    if (parent >= 0) {
      for (size_t k = slash; k <= n; k++) d->leaf[k - slash] = buf[k];
      d->parent = parent;
      return 0;
    }
  }
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && buf[i] != '/') continue;
    size_t len = i - start;
    if (len >= sizeof d->leaf) return -ENAMETOOLONG;
    if (i == n) {
      // The last component: the caller creates or opens it.
      for (size_t k = 0; k < len; k++) d->leaf[k] = buf[start + k];
      d->leaf[len] = 0;
      return 0;
    }
    if (len > 0) {
      buf[i] = 0;
      long r = Sys(__NR_mkdirat, d->parent, reinterpret_cast<long>(buf + start), parentMode);
      if (r < 0 && r != -EEXIST) return r;
      long next = OpenIn(d->root, buf, O_PATH | O_DIRECTORY);
      buf[i] = '/';
      if (next < 0) return next;
      if (d->parent != d->root) Close(d->parent);
      d->parent = next;
    }
    start = i + 1;
  }
  return 0;
}

// The destination itself, opened O_PATH (following a symlink inside the root).
CHILD_FN long OpenDest(Dest *d, long extra = 0) { return OpenIn(d->root, d->rel, O_PATH | extra); }

// Makes sure the mountpoint exists: a directory (0755) or a file (0444), as bwrap.
CHILD_FN long EnsureMountpoint(Dest *d, bool dir) {
  if (d->isRoot) return dir ? 0 : -EISDIR;
  long r;
  if (dir) {
    r = Sys(__NR_mkdirat, d->parent, reinterpret_cast<long>(d->leaf), 0755);
  } else {
    r = Sys(__NR_mknodat, d->parent, reinterpret_cast<long>(d->leaf), S_IFREG | 0444, 0);
  }
  return r == -EEXIST ? 0 : r;
}

CHILD_FN long SetAttr(long mfd, unsigned long long set, bool recursive) {
  if (set == 0) return 0;
  struct mount_attr attr;
  attr.attr_set = set;
  attr.attr_clr = 0;
  attr.propagation = 0;
  attr.userns_fd = 0;
  return Sys(__NR_mount_setattr, mfd, reinterpret_cast<long>(""), AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0),
             reinterpret_cast<long>(&attr), sizeof attr);
}

CHILD_FN long MoveTo(long mfd, long tfd) {
  return Sys(__NR_move_mount, mfd, reinterpret_cast<long>(""), tfd, reinterpret_cast<long>(""),
             MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

CHILD_FN bool IsDirFd(long fd, long *err) {
  struct stat st;
  long r = Sys(__NR_newfstatat, fd, reinterpret_cast<long>(""), reinterpret_cast<long>(&st), AT_EMPTY_PATH);
  if (r < 0) {
    *err = r;
    return false;
  }
  *err = 0;
  return S_ISDIR(st.st_mode);
}

// Attaches the detached mount `mfd` at the destination, creating the
// mountpoint to match its type. Takes ownership of mfd; with `keep`, a
// successfully attached mfd is handed over there instead of closed.
CHILD_FN long AttachAt(Dest *d, long mfd, long *keep = nullptr) {
  long err;
  bool dir = IsDirFd(mfd, &err);
  if (err < 0) {
    Close(mfd);
    return StageError(err, kStageSource);
  }
  // An existing mountpoint (the common case) is opened right away; otherwise it
  // is made first, as before (mkdirat/mknodat on an existing one is EEXIST, a
  // no-op that still costs a lookup). The root is always checked (EISDIR).
  long tfd = d->isRoot ? -ENOENT : OpenDest(d);
  long r;
  if (tfd < 0) {
    r = EnsureMountpoint(d, dir);
    if (r < 0) {
      Close(mfd);
      return StageError(r, kStageMountpoint);
    }
    tfd = OpenDest(d);
  }
  if (tfd < 0) {
    Close(mfd);
    return StageError(tfd, kStageMountpoint);
  }
  r = MoveTo(mfd, tfd);
  Close(tfd);
  if (r >= 0 && keep != nullptr) {
    *keep = mfd;
    return 0;
  }
  Close(mfd);
  return StageError(r, kStageAttach);
}

// A recursive bind of `src` (nosuid; nodev unless devices; read-only
// recursively when asked), attached at the destination.
CHILD_FN long Bind(Dest *d, long dirfd, const char *src, int flags, long *keep = nullptr) {
  long mfd = Sys(__NR_open_tree, dirfd, reinterpret_cast<long>(src),
                 OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | (src[0] == 0 ? AT_EMPTY_PATH : 0));
  if (mfd == -ENOENT && (flags & kFsOptional)) return 0;
  if (mfd < 0) return StageError(mfd, kStageSource);
  unsigned long long set = MOUNT_ATTR_NOSUID;
  if (!(flags & kFsDevices)) set |= MOUNT_ATTR_NODEV;
  if (flags & kFsRo) set |= MOUNT_ATTR_RDONLY;
  long r = SetAttr(mfd, set, true);
  if (r < 0) {
    Close(mfd);
    return StageError(r, kStageAttr);
  }
  return AttachAt(d, mfd, keep);
}

// fsopen(type) with "key\0value\0" pairs (an empty value sets a flag), then
// fsmount with `attrs`. Returns the detached mount's fd.
CHILD_FN long NewMount(const char *spec, size_t specLen, long attrs) {
  const char *end = spec + specLen;
  const char *type = spec;
  const char *p = type + Len(type) + 1;
  long fs = Sys(__NR_fsopen, reinterpret_cast<long>(type), FSOPEN_CLOEXEC);
  if (fs < 0) return fs;
  while (p < end) {
    const char *key = p;
    const char *val = key + Len(key) + 1;
    if (val >= end) break;
    p = val + Len(val) + 1;
    long r = val[0] == 0 ? Sys(__NR_fsconfig, fs, FSCONFIG_SET_FLAG, reinterpret_cast<long>(key), 0, 0)
                         : Sys(__NR_fsconfig, fs, FSCONFIG_SET_STRING, reinterpret_cast<long>(key),
                               reinterpret_cast<long>(val), 0);
    if (r < 0) {
      Close(fs);
      return r;
    }
  }
  long r = Sys(__NR_fsconfig, fs, FSCONFIG_CMD_CREATE, 0, 0, 0);
  if (r < 0) {
    Close(fs);
    return r;
  }
  long mfd = Sys(__NR_fsmount, fs, FSMOUNT_CLOEXEC, attrs);
  Close(fs);
  return mfd;
}

CHILD_FN long Symlink(long dirfd, const char *leaf, const char *target) {
  long r = Sys(__NR_symlinkat, reinterpret_cast<long>(target), dirfd, reinterpret_cast<long>(leaf));
  if (r != -EEXIST) return r;
  // An existing link with the same content is fine (bwrap).
  char buf[kPathMax];
  long n = Sys(__NR_readlinkat, dirfd, reinterpret_cast<long>(leaf), reinterpret_cast<long>(buf), sizeof buf);
  size_t tl = Len(target);
  if (n >= 0 && static_cast<size_t>(n) == tl && Eq(buf, target, tl)) return 0;
  return StageError(-EEXIST, kStageExists);
}

// A minimal /dev, as bwrap's --dev: a tmpfs with the host's null, zero, full,
// random, urandom and tty bound in, a private devpts (ptmx through pts/ptmx),
// shm, and the fd/stdin/stdout/stderr/core links.
CHILD_FN long Dev(const SandboxState *st, Dest *d) {
  long r = EnsureMountpoint(d, true);
  if (r < 0) return StageError(r, kStageMountpoint);
  static const char kTmpfs[] = "tmpfs\0source\0tmpfs\0mode\0" "0755\0";
  long dev = NewMount(kTmpfs, sizeof kTmpfs - 1, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  if (dev < 0) return StageError(dev, kStageCreate);
  long tfd = OpenDest(d);
  if (tfd < 0) {
    Close(dev);
    return StageError(tfd, kStageMountpoint);
  }
  r = MoveTo(dev, tfd);
  Close(tfd);
  if (r < 0) {
    Close(dev);
    return StageError(r, kStageAttach);
  }
  // `dev` is the root of the new tmpfs, now attached: the rest is relative to it.
  static const char *const kNodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
  for (const char *node : kNodes) {
    // The host's device, where the old root is: at /oldroot, or still "/" when stacked.
    char src[32] = "/oldroot/dev/";
    const char *from = st->stacked ? src + 8 : src;
    size_t k = Len(src);
    for (size_t i = 0; node[i] != 0; i++) src[k++] = node[i];
    src[k] = 0;
    r = Sys(__NR_mknodat, dev, reinterpret_cast<long>(node), S_IFREG | 0444, 0);
    if (r < 0) break;
    long m = Sys(__NR_open_tree, AT_FDCWD, reinterpret_cast<long>(from), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (m < 0) {
      r = StageError(m, kStageSource);
      break;
    }
    r = SetAttr(m, MOUNT_ATTR_NOSUID, false);
    long t = r < 0 ? r : Sys(__NR_openat, dev, reinterpret_cast<long>(node), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (r >= 0 && t < 0) r = t;
    if (r >= 0) r = MoveTo(m, t);
    Close(t);
    Close(m);
    if (r < 0) {
      r = StageError(r, kStageAttach);
      break;
    }
  }
  static const char *const kLinks[][2] = {{"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
                                          {"stderr", "/proc/self/fd/2"}, {"fd", "/proc/self/fd"},
                                          {"core", "/proc/kcore"},       {"ptmx", "pts/ptmx"}};
  for (size_t i = 0; r >= 0 && i < sizeof kLinks / sizeof kLinks[0]; i++) r = Symlink(dev, kLinks[i][0], kLinks[i][1]);
  if (r >= 0) r = Sys(__NR_mkdirat, dev, reinterpret_cast<long>("shm"), 0755);
  if (r >= 0) r = Sys(__NR_mkdirat, dev, reinterpret_cast<long>("pts"), 0755);
  if (r >= 0) {
    static const char kPts[] = "devpts\0source\0devpts\0newinstance\0\0ptmxmode\0" "0666\0mode\0" "620\0";
    long pts = NewMount(kPts, sizeof kPts - 1, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    if (pts < 0) {
      r = StageError(pts, kStageCreate);
    } else {
      long t = Sys(__NR_openat, dev, reinterpret_cast<long>("pts"), O_PATH | O_DIRECTORY | O_CLOEXEC);
      r = t < 0 ? t : MoveTo(pts, t);
      if (r < 0) r = StageError(r, kStageAttach);
      Close(t);
      Close(pts);
    }
  }
  Close(dev);
  return r;
}

// Writes everything readable from `from` (a memfd the parent filled) into `to`.
CHILD_FN long CopyData(long from, long to) {
  long off = 0;
  for (;;) {
    long n = Sys(__NR_sendfile, to, from, reinterpret_cast<long>(&off), 1 << 20);
    if (n == -EINTR) continue;
    if (n <= 0) return n;
  }
}

CHILD_FN long File(Dest *d, int flags, long mode, long dataFd, const char *scratch) {
  if (!(flags & kFsBindFile)) {
    if (d->isRoot) return StageError(-EISDIR, kStageMountpoint);
    long fd = OpenIn(d->root, d->rel, O_CREAT | O_WRONLY | O_TRUNC | O_NOCTTY, mode);
    if (fd < 0) return StageError(fd, kStageMountpoint);
    long r = CopyData(dataFd, fd);
    Close(fd);
    return StageError(r, kStageWrite);
  }
  // --bind-data / --ro-bind-data: a file on the base tmpfs (outside the new
  // root, gone with it), bound over the destination.
  long fd = Sys(__NR_openat, AT_FDCWD, reinterpret_cast<long>(scratch), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0) return StageError(fd, kStageWrite);
  long r = CopyData(dataFd, fd);
  Close(fd);
  if (r < 0) return StageError(r, kStageWrite);
  r = Bind(d, AT_FDCWD, scratch, (flags & kFsRo) | kFsDevices);
  Sys(__NR_unlinkat, AT_FDCWD, reinterpret_cast<long>(scratch), 0);
  return r;
}

}  // namespace

CHILD_FN long SandboxBase(SandboxState *st, int64_t mode) {
  st->oldUmask = Sys(__NR_umask, 0);
  if (mode & kBaseStacked) {
    // No base, no pivot into it: the plan starts with the bind that becomes the
    // root, which goes straight over "/" (SandboxFs), and sources are bound from
    // the old root, still "/". One pivot_root fewer (it walks every thread of the
    // system, chroot_fs_refs) and two tmpfs mounts fewer.
    st->stacked = true;
    long p = Sys(__NR_openat, AT_FDCWD, reinterpret_cast<long>("/proc"), O_PATH | O_DIRECTORY | O_CLOEXEC);
    st->procFd = p >= 0 ? static_cast<int>(p) : -1;
    return 0;
  }
  // The base: a tmpfs over /tmp in this (private) mount namespace; it becomes
  // "/" and the host's root goes to /oldroot, from where sources are bound.
  long r = Sys(__NR_mount, reinterpret_cast<long>("tmpfs"), reinterpret_cast<long>("/tmp"),
               reinterpret_cast<long>("tmpfs"), kMsNosuid | kMsNodev, reinterpret_cast<long>("mode=0755"));
  if (r < 0) return StageError(r, kStageBase);
  r = Sys(__NR_chdir, reinterpret_cast<long>("/tmp"));
  if (r >= 0) r = Sys(__NR_mkdirat, AT_FDCWD, reinterpret_cast<long>("newroot"), 0755);
  if (r >= 0) r = Sys(__NR_mkdirat, AT_FDCWD, reinterpret_cast<long>("oldroot"), 0755);
  if (r >= 0) r = Sys(__NR_pivot_root, reinterpret_cast<long>("."), reinterpret_cast<long>("oldroot"));
  if (r >= 0) r = Sys(__NR_chdir, reinterpret_cast<long>("/"));
  if (r < 0) return StageError(r, kStageBase);
  r = Sys(__NR_mount, reinterpret_cast<long>("tmpfs"), reinterpret_cast<long>(kNewRoot),
          reinterpret_cast<long>("tmpfs"), kMsNosuid | kMsNodev, reinterpret_cast<long>("mode=0755"));
  if (r < 0) return StageError(r, kStageBase);
  // Kept for SandboxDisableUserns, which needs a procfs after the old root is gone.
  long p = Sys(__NR_openat, AT_FDCWD, reinterpret_cast<long>("/oldroot/proc"), O_PATH | O_DIRECTORY | O_CLOEXEC);
  st->procFd = p >= 0 ? static_cast<int>(p) : -1;
  return 0;
}

CHILD_FN long SandboxFs(SandboxState *st, int64_t a, int64_t b, const char *dest, const char *s2,
                               size_t s2len) {
  int subop = static_cast<int>(a & 0xff);
  int flags = static_cast<int>((a >> 8) & 0xff);
  long mode = static_cast<long>((a >> 16) & 07777);
  // Parents made for a destination whose mode hides it from group or others hide themselves too (bwrap).
  long parentMode = 0755;
  if ((subop == kFsDir || subop == kFsFile) && (mode & 0070) == 0) parentMode &= ~0050L;
  if ((subop == kFsDir || subop == kFsFile) && (mode & 0007) == 0) parentMode &= ~0005L;
  Dest d;
  long r;
  if (subop == kFsChmod || subop == kFsRemountRo) {
    // Existing paths only: nothing is created.
    d.root = OpenRoot(st, flags);
    if (d.root < 0) return StageError(d.root, kStageResolve);
    d.parent = d.root;
    d.rel = dest;
    long fd = OpenDest(&d);
    if (fd < 0) {
      DestClose(&d);
      return StageError(fd, kStageResolve);
    }
    if (subop == kFsChmod) {
      r = Sys(__NR_fchmodat2, fd, reinterpret_cast<long>(""), mode, AT_EMPTY_PATH);
    } else {
      r = SetAttr(fd, MOUNT_ATTR_RDONLY, false);
      if (r < 0) r = StageError(r, kStageAttr);
    }
    Close(fd);
    DestClose(&d);
    return r;
  }
  if (subop == kFsBind && !(flags & kFsSrcInRoot)) {
    // A missing optional source skips the operation before anything is created for it.
    struct stat sst;
    long sr = Sys(__NR_newfstatat, AT_FDCWD, reinterpret_cast<long>(s2), reinterpret_cast<long>(&sst), 0);
    if (sr == -ENOENT && (flags & kFsOptional)) return 0;
    if (sr < 0) return StageError(sr, kStageSource);
  }
  r = ResolveParents(st, &d, flags, dest, parentMode);
  if (r < 0) {
    DestClose(&d);
    return StageError(r, kStageParents);
  }
  // Stacked, only the first operation (the root bind) may mount at "/": the
  // pivot takes the mount it kept, and a later one there would be lost.
  if (st->stacked && d.isRoot && subop != kFsChmod && subop != kFsDir && (subop != kFsBind || st->rootFd >= 0)) {
    DestClose(&d);
    return StageError(-EINVAL, kStageMountpoint);
  }
  switch (subop) {
    case kFsBind:
      if (flags & kFsSrcInRoot) {
        long src = OpenIn(d.root, s2, O_PATH);
        if (src == -ENOENT && (flags & kFsOptional)) {
          r = 0;
          break;
        }
        if (src < 0) {
          r = StageError(src, kStageSource);
          break;
        }
        r = Bind(&d, src, "", flags);
        Close(src);
      } else {
        long *keep = st->stacked && d.isRoot ? &st->rootFd : nullptr;
        r = Bind(&d, AT_FDCWD, s2, flags, keep);
      }
      break;
    case kFsNewMount: {
      r = EnsureMountpoint(&d, true);
      if (r < 0) {
        r = StageError(r, kStageMountpoint);
        break;
      }
      long mfd = NewMount(s2, s2len, b);
      if (mfd < 0) {
        r = StageError(mfd, kStageCreate);
        break;
      }
      r = AttachAt(&d, mfd);
      break;
    }
    case kFsDev:
      r = Dev(st, &d);
      break;
    case kFsDir:
      if (d.isRoot) break;
      r = Sys(__NR_mkdirat, d.parent, reinterpret_cast<long>(d.leaf), mode);
      if (r == -EEXIST) {
        long fd = OpenDest(&d, O_DIRECTORY);
        r = fd < 0 ? StageError(fd, kStageExists) : 0;
        Close(fd);
      } else if (r < 0) {
        r = StageError(r, kStageMountpoint);
      }
      break;
    case kFsSymlink:
      r = d.isRoot ? StageError(-EEXIST, kStageExists) : Symlink(d.parent, d.leaf, s2);
      if (r < 0 && (((-r) >> 12) == 0)) r = StageError(r, kStageMountpoint);
      break;
    case kFsFile:
      r = File(&d, flags, mode, b, s2);
      break;
    case kFsAttach: {
      // The fd is the caller's (an IdmappedMount's): attach through a copy so the caller's stays theirs.
      long m = Sys(__NR_fcntl, b, F_DUPFD_CLOEXEC, 0);
      r = m < 0 ? StageError(m, kStageSource) : AttachAt(&d, m);
      break;
    }
    default:
      r = -EINVAL;
  }
  DestClose(&d);
  return r;
}

CHILD_FN long SandboxPivot(SandboxState *st) {
  // pivot_root(".", "."): the new root becomes "/", the base is stacked on it
  // and detached right away, and with it everything mounted below it: the old
  // root at /oldroot (MNT_DETACH takes the whole subtree; busy mounts go when
  // last used). One detach, not one for the old root and one for the base:
  // each detach that frees mounts waits for an RCU grace period
  // (namespace_unlock), the costliest step of the pivot.
  // Stacked: the root bind over the old root, through the fd kept (no path leads there).
  long r = st->stacked ? Sys(__NR_fchdir, st->rootFd) : Sys(__NR_chdir, reinterpret_cast<long>(kNewRoot));
  if (r >= 0) r = Sys(__NR_pivot_root, reinterpret_cast<long>("."), reinterpret_cast<long>("."));
  if (r >= 0) r = Sys(__NR_umount2, reinterpret_cast<long>("."), MNT_DETACH);
  if (r >= 0) r = Sys(__NR_chdir, reinterpret_cast<long>("/"));
  if (st->stacked) {
    Close(st->rootFd);
    st->rootFd = -1;
  }
  if (r < 0) return StageError(r, kStagePivot);
  if (st->oldUmask >= 0) Sys(__NR_umask, st->oldUmask);
  st->pivoted = true;
  return 0;
}

CHILD_FN long SandboxHostname(const char *name, size_t len) {
  return Sys(__NR_sethostname, reinterpret_cast<long>(name), static_cast<long>(len));
}

CHILD_FN long SandboxKeepCaps() { return Sys(__NR_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0); }

CHILD_FN long SandboxCapabilities(uint64_t keep, int lastCap, bool clamp) {
  struct __user_cap_header_struct hdr;
  struct __user_cap_data_struct data[2];
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  long r = Sys(__NR_capget, reinterpret_cast<long>(&hdr), reinterpret_cast<long>(data));
  if (r < 0) return r;
  // "all" is every capability this process can hold: what it has permitted.
  if (clamp) keep &= (static_cast<uint64_t>(data[1].permitted) << 32) | data[0].permitted;
  // Dropping from the bounding set needs CAP_SETPCAP in the effective set,
  // which a uid change may have cleared: raise every permitted one first.
  data[0].effective = data[0].permitted;
  data[1].effective = data[1].permitted;
  r = Sys(__NR_capset, reinterpret_cast<long>(&hdr), reinterpret_cast<long>(data));
  if (r < 0) return r;
  for (int cap = 0; cap <= lastCap; cap++) {
    if (keep & (1ULL << cap)) continue;
    r = Sys(__NR_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
    if (r < 0 && r != -EINVAL) return r;
  }
  data[0].effective = data[0].permitted = data[0].inheritable = static_cast<uint32_t>(keep);
  data[1].effective = data[1].permitted = data[1].inheritable = static_cast<uint32_t>(keep >> 32);
  r = Sys(__NR_capset, reinterpret_cast<long>(&hdr), reinterpret_cast<long>(data));
  if (r < 0) return r;
  r = Sys(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (r < 0) return r;
  for (int cap = 0; cap <= lastCap; cap++) {
    if (!(keep & (1ULL << cap))) continue;
    r = Sys(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
    if (r < 0) return r;
  }
  return 0;
}

CHILD_FN long SandboxNoNewPrivs() { return Sys(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }

CHILD_FN long SandboxSeccomp(const char *prog, size_t len) {
  struct sock_fprog fp;
  fp.len = static_cast<unsigned short>(len / sizeof(struct sock_filter));
  fp.filter = reinterpret_cast<struct sock_filter *>(const_cast<char *>(prog));
  return Sys(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, reinterpret_cast<long>(&fp));
}

CHILD_FN long SandboxLoopback() {
  long s = Sys(__NR_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return s;
  struct ifreq ifr;
  char *p = reinterpret_cast<char *>(&ifr);
  for (size_t i = 0; i < sizeof ifr; i++) p[i] = 0;
  ifr.ifr_name[0] = 'l';
  ifr.ifr_name[1] = 'o';
  long r = Sys(__NR_ioctl, s, SIOCGIFFLAGS, reinterpret_cast<long>(&ifr));
  if (r >= 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    r = Sys(__NR_ioctl, s, SIOCSIFFLAGS, reinterpret_cast<long>(&ifr));
  }
  Close(s);
  return r;
}

namespace {
CHILD_FN long WriteAt(long dirfd, const char *path, const char *data, size_t len) {
  long fd = Sys(__NR_openat, dirfd, reinterpret_cast<long>(path), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  long r = Sys(__NR_write, fd, reinterpret_cast<long>(data), static_cast<long>(len));
  Close(fd);
  if (r >= 0 && static_cast<size_t>(r) != len) r = -EIO;
  return r < 0 ? r : 0;
}
}  // namespace

CHILD_FN long SandboxDisableUserns(SandboxState *st, int64_t insideUid, int64_t insideGid) {
  long proc = st->procFd;
  bool own = false;
  if (proc < 0) {
    proc = Sys(__NR_openat, AT_FDCWD, reinterpret_cast<long>("/proc"), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (proc < 0) return StageError(proc, kStageProcSys);
    own = true;
  }
  // The limit of *this* user namespace (a per-namespace sysctl): the nested
  // namespace made next counts against it, so none can be made below that.
  long r = WriteAt(proc, "sys/user/max_user_namespaces", "1", 1);
  if (r < 0) r = StageError(r, kStageProcSys);
  long uid = Sys(__NR_getuid), gid = Sys(__NR_getgid);
  if (r >= 0) r = Sys(__NR_unshare, CLONE_NEWUSER);
  if (r >= 0) {
    // One id each, the process's own outside (what a writer without
    // capabilities in the parent namespace may map), seen inside as the ids
    // the program will run as (or as themselves).
    char buf[64];
    size_t n = Itoa(buf, insideUid >= 0 ? insideUid : uid);
    buf[n++] = ' ';
    n += Itoa(buf + n, uid);
    buf[n++] = ' ';
    buf[n++] = '1';
    buf[n++] = '\n';
    r = WriteAt(proc, "self/uid_map", buf, n);
    if (r >= 0) r = WriteAt(proc, "self/setgroups", "deny", 4);
    if (r >= 0) {
      n = Itoa(buf, insideGid >= 0 ? insideGid : gid);
      buf[n++] = ' ';
      n += Itoa(buf + n, gid);
      buf[n++] = ' ';
      buf[n++] = '1';
      buf[n++] = '\n';
      r = WriteAt(proc, "self/gid_map", buf, n);
    }
    if (r < 0) r = StageError(r, kStageMaps);
  }
  if (own) Close(proc);
  return r;
}

CHILD_FN long SandboxReaper(int errFd) {
  long pid = Sys(__NR_clone, SIGCHLD, 0, 0, 0, 0);
  if (pid < 0) return pid;
  if (pid == 0) return 0;  // the program's process: the next steps, then execve
  // pid 1. Nothing of the caller's stays open here (its stdio would keep pipes
  // alive); the error pipe is the program's to close at exec.
  (void)errFd;
  Sys(__NR_close_range, 0, ~0U, 0);
  // This process holds a copy of the parent's memory (the fork-like child):
  // non-dumpable, so that the sandboxed program, though it runs with the same
  // credentials, can neither ptrace it nor read /proc/1/mem. The flag belongs
  // to this copy of the mm only.
  Sys(__NR_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
  sigset_t all;
  char *m = reinterpret_cast<char *>(&all);
  for (size_t i = 0; i < sizeof all; i++) m[i] = static_cast<char>(0xff);
  // Every signal is blocked since clone3 (the program unblocks at execve):
  // they queue, and the signalfd hands them over one by one.
  long sfd = Sys(__NR_signalfd4, -1, reinterpret_cast<long>(&all), 8, SFD_CLOEXEC);
  for (;;) {
    struct signalfd_siginfo si;
    long n = sfd >= 0 ? Sys(__NR_read, sfd, reinterpret_cast<long>(&si), sizeof si) : -EBADF;
    if (n == -EINTR) continue;
    int signo = n == static_cast<long>(sizeof si) ? static_cast<int>(si.ssi_signo) : SIGCHLD;
    if (signo != SIGCHLD) {
      Sys(__NR_kill, pid, signo);
      continue;
    }
    // Reap everything that exited: the program, and orphans reparented to us.
    for (;;) {
      siginfo_t ci;
      if (ReapAny(&ci, sfd >= 0 ? WNOHANG : 0) != 0 || ci.si_pid == 0) break;
      if (ci.si_pid == pid) ExitGroup(ci.si_code == CLD_EXITED ? ci.si_status : 128 + ci.si_status);
    }
  }
}

}  // namespace child
}  // namespace userns

// The child side never touches N-API: fail the build if this translation unit
// pulled it in, however indirectly.
#if defined(SRC_NAPI_H_) || defined(SRC_NODE_API_H_) || defined(NAPI_VERSION_EXPERIMENTAL)
#error "native/child/ is N-API free: do not include napi.h, node_api.h or addon.h here"
#endif
