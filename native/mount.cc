// The new mount API (open_tree, open_tree_attr, mount_setattr, move_mount,
// fsopen/fsconfig/fsmount, statmount) as thin wrappers, plus two forked
// helpers the idmapped-mount code needs: a process that holds a fresh user
// namespace while the parent writes its maps, and a child that performs one
// filesystem operation under other credentials.
//
// Every constant is defined here because Debian 12 ships 6.1 uapi headers
// (no open_tree_attr, no statmount idmap fields). Every decision (flags,
// which helper, how to read an errno) is taken in lib/mounts.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "child/ops.h"
#include "child/protocol.h"
#include "child/reap.h"
#include "child/sys.h"

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_statmount
#define SYS_statmount 457
#endif
#ifndef SYS_open_tree_attr
#define SYS_open_tree_attr 467
#endif

namespace userns {
namespace {

using namespace protocol::fsop;  // NOLINT: fsOpAs's generated modes, ops and steps

constexpr unsigned kOpenTreeCloexec = O_CLOEXEC;
constexpr unsigned kFsopenCloexec = 0x1;
constexpr unsigned kFsmountCloexec = 0x1;
constexpr unsigned kFsconfigSetString = 1;
constexpr unsigned kFsconfigCmdCreate = 6;
constexpr unsigned kStatxMntIdUnique = 0x4000;

// include/uapi/linux/mount.h: struct mount_attr (MOUNT_ATTR_SIZE_VER0 = 32).
struct MountAttr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};
static_assert(sizeof(MountAttr) == 32, "mount_attr VER0 is 32 bytes");

// struct mnt_id_req, VER1 (32 bytes). `fd` is spare before STATMOUNT_BY_FD.
struct MntIdReq {
  uint32_t size;
  uint32_t fd;
  uint64_t mnt_id;
  uint64_t param;
  uint64_t mnt_ns_id;
};

// struct statmount as of 6.15 (supported_mask, mnt_uidmap*, mnt_gidmap*).
struct StatmountBuf {
  uint32_t size;
  uint32_t mnt_opts;
  uint64_t mask;
  uint32_t sb_dev_major;
  uint32_t sb_dev_minor;
  uint64_t sb_magic;
  uint32_t sb_flags;
  uint32_t fs_type;
  uint64_t mnt_id;
  uint64_t mnt_parent_id;
  uint32_t mnt_id_old;
  uint32_t mnt_parent_id_old;
  uint64_t mnt_attr;
  uint64_t mnt_propagation;
  uint64_t mnt_peer_group;
  uint64_t mnt_master;
  uint64_t propagate_from;
  uint32_t mnt_root;
  uint32_t mnt_point;
  uint64_t mnt_ns_id;
  uint32_t fs_subtype;
  uint32_t sb_source;
  uint32_t opt_num;
  uint32_t opt_array;
  uint32_t opt_sec_num;
  uint32_t opt_sec_array;
  uint64_t supported_mask;
  uint32_t mnt_uidmap_num;
  uint32_t mnt_uidmap;
  uint32_t mnt_gidmap_num;
  uint32_t mnt_gidmap;
  uint64_t spare2[43];
  // char str[] follows
};
static_assert(sizeof(StatmountBuf) == 512, "statmount fixed part is 512 bytes");

constexpr uint64_t kSmFsType = 0x20, kSmMntRoot = 0x8, kSmMntPoint = 0x10;
constexpr uint64_t kSmMntUidmap = 0x2000, kSmMntGidmap = 0x4000;

// A directory fd argument: a non-negative fd or AT_FDCWD (-100).
int ArgDfd(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsNumber())
    ThrowUsage(info.Env(), std::string(name) + " must be a directory fd or AT_FDCWD (-100)");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v != static_cast<int>(v) || (v < 0 && v != AT_FDCWD) || v > INT_MAX)
    ThrowUsage(info.Env(), std::string(name) + " must be a directory fd or AT_FDCWD (-100)");
  return static_cast<int>(v);
}

uint32_t ArgU32(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsNumber())
    ThrowUsage(info.Env(), std::string(name) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v < 0 || v > 4294967295.0 || v != static_cast<double>(static_cast<uint32_t>(v)))
    ThrowUsage(info.Env(), std::string(name) + " must be an integer in 0..2^32-1");
  return static_cast<uint32_t>(v);
}

int64_t ArgInt(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsNumber())
    ThrowUsage(info.Env(), std::string(name) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v != static_cast<double>(static_cast<int64_t>(v)))
    ThrowUsage(info.Env(), std::string(name) + " must be an integer");
  return static_cast<int64_t>(v);
}

uint64_t U64Field(const Napi::Object &o, const char *key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return 0;
  if (v.IsBigInt()) {
    bool lossless = true;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  if (v.IsNumber()) return static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
  throw Napi::TypeError::New(o.Env(), std::string("mount_attr.") + key + " must be a number");
}

// {attrSet, attrClr, propagation, usernsFd} -> struct mount_attr.
MountAttr ArgAttr(const Napi::CallbackInfo &info, size_t i) {
  if (info.Length() <= i || !info[i].IsObject()) ThrowUsage(info.Env(), "attr must be an object");
  Napi::Object o = info[i].As<Napi::Object>();
  MountAttr a{};
  a.attr_set = U64Field(o, "attrSet");
  a.attr_clr = U64Field(o, "attrClr");
  a.propagation = U64Field(o, "propagation");
  a.userns_fd = U64Field(o, "usernsFd");
  return a;
}

std::string At(int dfd, const std::string &path) {
  if (dfd == AT_FDCWD) return path.empty() ? std::string(".") : path;
  return path.empty() ? "fd " + std::to_string(dfd) : path + " relative to fd " + std::to_string(dfd);
}

// openTree(dfd, path, flags) -> fd. OPEN_TREE_CLOEXEC is always added.
Napi::Value OpenTree(const Napi::CallbackInfo &info) {
  int dfd = ArgDfd(info, 0, "dfd");
  std::string path = ArgString(info, 1, "path");
  uint32_t flags = ArgU32(info, 2, "flags") | kOpenTreeCloexec;
  long fd = syscall(SYS_open_tree, dfd, path.c_str(), flags);
  if (fd < 0) ThrowErrno(info.Env(), errno, "open_tree", "open_tree of " + At(dfd, path));
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

// openTreeAttr(dfd, path, flags, attr|null) -> fd (Linux 6.15+, syscall 467).
Napi::Value OpenTreeAttr(const Napi::CallbackInfo &info) {
  int dfd = ArgDfd(info, 0, "dfd");
  std::string path = ArgString(info, 1, "path");
  uint32_t flags = ArgU32(info, 2, "flags") | kOpenTreeCloexec;
  MountAttr a{};
  bool have = info.Length() > 3 && info[3].IsObject();
  if (have) a = ArgAttr(info, 3);
  long fd = syscall(SYS_open_tree_attr, dfd, path.c_str(), flags, have ? &a : nullptr,
                    have ? sizeof a : 0);
  if (fd < 0) ThrowErrno(info.Env(), errno, "open_tree_attr", "open_tree_attr of " + At(dfd, path));
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

// mountSetattr(dfd, path, flags, attr).
Napi::Value MountSetattr(const Napi::CallbackInfo &info) {
  int dfd = ArgDfd(info, 0, "dfd");
  std::string path = ArgString(info, 1, "path");
  uint32_t flags = ArgU32(info, 2, "flags");
  MountAttr a = ArgAttr(info, 3);
  if (syscall(SYS_mount_setattr, dfd, path.c_str(), flags, &a, sizeof a) < 0)
    ThrowErrno(info.Env(), errno, "mount_setattr", "mount_setattr on " + At(dfd, path));
  return info.Env().Undefined();
}

// cloneIdmapped(dfd, path, openFlags, setattrFlags, attrSet, attrClr, propagation, usernsFd) -> fd.
// open_tree(OPEN_TREE_CLONE | openFlags) then mount_setattr on the clone, in
// one call: mount churn is dominated by per-call overhead once the syscalls
// are cheap, and an object argument costs a property lookup per field.
// Either syscall's failure throws with that syscall's name; after a
// mount_setattr failure the clone is closed, so nothing is left behind.
Napi::Value CloneIdmapped(const Napi::CallbackInfo &info) {
  int dfd = ArgDfd(info, 0, "dfd");
  std::string path = ArgString(info, 1, "path");
  uint32_t oflags = ArgU32(info, 2, "openFlags") | kOpenTreeCloexec;
  uint32_t sflags = ArgU32(info, 3, "setattrFlags");
  MountAttr a{};
  a.attr_set = ArgU32(info, 4, "attrSet");
  a.attr_clr = ArgU32(info, 5, "attrClr");
  a.propagation = ArgU32(info, 6, "propagation");
  a.userns_fd = static_cast<uint64_t>(ArgInt(info, 7, "usernsFd"));
  long fd = syscall(SYS_open_tree, dfd, path.c_str(), oflags);
  if (fd < 0) ThrowErrno(info.Env(), errno, "open_tree", "open_tree of " + At(dfd, path));
  if (syscall(SYS_mount_setattr, static_cast<int>(fd), "", sflags, &a, sizeof a) < 0) {
    int err = errno;
    close(static_cast<int>(fd));
    ThrowErrno(info.Env(), err, "mount_setattr", "mount_setattr on the clone of " + At(dfd, path));
  }
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

// moveMount(fromDfd, fromPath, toDfd, toPath, flags).
Napi::Value MoveMount(const Napi::CallbackInfo &info) {
  int fdfd = ArgDfd(info, 0, "fromDfd");
  std::string fpath = ArgString(info, 1, "fromPath");
  int tdfd = ArgDfd(info, 2, "toDfd");
  std::string tpath = ArgString(info, 3, "toPath");
  uint32_t flags = ArgU32(info, 4, "flags");
  if (syscall(SYS_move_mount, fdfd, fpath.c_str(), tdfd, tpath.c_str(), flags) < 0)
    ThrowErrno(info.Env(), errno, "move_mount",
               "move_mount of " + At(fdfd, fpath) + " to " + At(tdfd, tpath));
  return info.Env().Undefined();
}

// fsopen(fsname) -> fd (FSOPEN_CLOEXEC).
Napi::Value Fsopen(const Napi::CallbackInfo &info) {
  std::string name = ArgString(info, 0, "fsname");
  long fd = syscall(SYS_fsopen, name.c_str(), kFsopenCloexec);
  if (fd < 0) ThrowErrno(info.Env(), errno, "fsopen", "fsopen of filesystem type " + name);
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

// fsconfigString(fd, key, value): FSCONFIG_SET_STRING.
Napi::Value FsconfigString(const Napi::CallbackInfo &info) {
  int fd = ArgFd(info, 0, "fd");
  std::string key = ArgString(info, 1, "key");
  std::string value = ArgString(info, 2, "value");
  if (syscall(SYS_fsconfig, fd, kFsconfigSetString, key.c_str(), value.c_str(), 0) < 0)
    ThrowErrno(info.Env(), errno, "fsconfig", "fsconfig " + key + "=" + value);
  return info.Env().Undefined();
}

// fsconfigCreate(fd): FSCONFIG_CMD_CREATE.
Napi::Value FsconfigCreate(const Napi::CallbackInfo &info) {
  int fd = ArgFd(info, 0, "fd");
  if (syscall(SYS_fsconfig, fd, kFsconfigCmdCreate, nullptr, nullptr, 0) < 0)
    ThrowErrno(info.Env(), errno, "fsconfig", "fsconfig FSCONFIG_CMD_CREATE");
  return info.Env().Undefined();
}

// fsmount(fd, attrFlags) -> detached mount fd (FSMOUNT_CLOEXEC).
Napi::Value Fsmount(const Napi::CallbackInfo &info) {
  int fd = ArgFd(info, 0, "fd");
  uint32_t attrs = ArgU32(info, 1, "attrFlags");
  long m = syscall(SYS_fsmount, fd, kFsmountCloexec, attrs);
  if (m < 0) ThrowErrno(info.Env(), errno, "fsmount", "fsmount of filesystem context fd " + std::to_string(fd));
  return Napi::Number::New(info.Env(), static_cast<double>(m));
}

// umount2(path, flags).
Napi::Value Umount2(const Napi::CallbackInfo &info) {
  std::string path = ArgString(info, 0, "path");
  uint32_t flags = ArgU32(info, 1, "flags");
  if (umount2(path.c_str(), static_cast<int>(flags)) < 0)
    ThrowErrno(info.Env(), errno, "umount2", "unmounting " + path);
  return info.Env().Undefined();
}

// mountIdOf(dfd, path, flags) -> unique 64-bit mount id (statx STATX_MNT_ID_UNIQUE, 6.8+).
Napi::Value MountIdOf(const Napi::CallbackInfo &info) {
  int dfd = ArgDfd(info, 0, "dfd");
  std::string path = ArgString(info, 1, "path");
  uint32_t flags = ArgU32(info, 2, "flags");
  struct statx stx;
  memset(&stx, 0, sizeof stx);
  if (syscall(SYS_statx, dfd, path.c_str(), flags, kStatxMntIdUnique, &stx) < 0)
    ThrowErrno(info.Env(), errno, "statx", "statx of " + At(dfd, path));
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("mountId", Napi::BigInt::New(info.Env(), static_cast<uint64_t>(stx.stx_mnt_id)));
  o.Set("unique", Napi::Boolean::New(info.Env(), (stx.stx_mask & kStatxMntIdUnique) != 0));
  return o;
}

// fstatAt(dfd, path, flags) -> {uid, gid, mode, dev, ino}: stat through an fd,
// so a detached mount can be looked at without attaching it.
Napi::Value FstatAt(const Napi::CallbackInfo &info) {
  int dfd = ArgDfd(info, 0, "dfd");
  std::string path = ArgString(info, 1, "path");
  uint32_t flags = ArgU32(info, 2, "flags");
  struct stat st;
  if (fstatat(dfd, path.c_str(), &st, static_cast<int>(flags)) < 0)
    ThrowErrno(info.Env(), errno, "fstatat", "stat of " + At(dfd, path));
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("uid", Napi::Number::New(env, st.st_uid));
  o.Set("gid", Napi::Number::New(env, st.st_gid));
  o.Set("mode", Napi::Number::New(env, st.st_mode));
  o.Set("dev", Napi::BigInt::New(env, static_cast<uint64_t>(st.st_dev)));
  o.Set("ino", Napi::BigInt::New(env, static_cast<uint64_t>(st.st_ino)));
  return o;
}

// Strings of a statmount result: `off` is relative to str[], `n` strings NUL-separated.
Napi::Array StrList(Napi::Env env, const char *base, size_t avail, uint32_t off, uint32_t n) {
  Napi::Array a = Napi::Array::New(env, n);
  size_t p = off;
  for (uint32_t i = 0; i < n && p < avail; i++) {
    size_t len = strnlen(base + p, avail - p);
    a.Set(i, Napi::String::New(env, base + p, len));
    p += len + 1;
  }
  return a;
}

// statmount(mntId: bigint, mask: bigint, byFd: number|-1)
//   -> {mask, mntAttr, fsType, mntRoot, mntPoint, uidmap, gidmap, mntId, mntNsId}
// byFd >= 0 uses STATMOUNT_BY_FD (newer kernels) to describe a detached mount.
Napi::Value Statmount(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsBigInt() || !info[1].IsBigInt())
    ThrowUsage(env, "statmount(mntId: bigint, mask: bigint, byFd)");
  bool lossless = true;
  uint64_t id = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
  uint64_t mask = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
  int64_t byFd = info.Length() > 2 ? ArgInt(info, 2, "byFd") : -1;
  MntIdReq req{};
  req.size = sizeof req;
  req.mnt_id = byFd >= 0 ? 0 : id;
  req.param = mask;
  req.fd = byFd >= 0 ? static_cast<uint32_t>(byFd) : 0;
  unsigned flags = byFd >= 0 ? 1u /* STATMOUNT_BY_FD */ : 0u;
  std::vector<char> buf(16384);
  long r;
  for (;;) {
    r = syscall(SYS_statmount, &req, buf.data(), buf.size(), flags);
    if (r < 0 && errno == EOVERFLOW && buf.size() < (1u << 22)) {
      buf.resize(buf.size() * 4);
      continue;
    }
    break;
  }
  if (r < 0)
    ThrowErrno(env, errno, "statmount",
               byFd >= 0 ? "statmount of mount fd " + std::to_string(byFd)
                         : "statmount of mount id " + std::to_string(id));
  const StatmountBuf *sm = reinterpret_cast<const StatmountBuf *>(buf.data());
  const char *str = buf.data() + sizeof(StatmountBuf);
  size_t avail = sm->size > sizeof(StatmountBuf) ? std::min<size_t>(sm->size, buf.size()) - sizeof(StatmountBuf) : 0;
  auto s = [&](uint32_t off) -> Napi::Value {
    if (off >= avail) return env.Undefined();
    return Napi::String::New(env, str + off, strnlen(str + off, avail - off));
  };
  Napi::Object o = Napi::Object::New(env);
  o.Set("mask", Napi::BigInt::New(env, sm->mask));
  o.Set("mntId", Napi::BigInt::New(env, sm->mnt_id));
  o.Set("mntAttr", Napi::BigInt::New(env, sm->mnt_attr));
  o.Set("mntNsId", Napi::BigInt::New(env, sm->mnt_ns_id));
  o.Set("sbMagic", Napi::BigInt::New(env, sm->sb_magic));
  if (sm->mask & kSmFsType) o.Set("fsType", s(sm->fs_type));
  if (sm->mask & kSmMntRoot) o.Set("mntRoot", s(sm->mnt_root));
  if (sm->mask & kSmMntPoint) o.Set("mntPoint", s(sm->mnt_point));
  if (sm->mask & kSmMntUidmap) o.Set("uidmap", StrList(env, str, avail, sm->mnt_uidmap, sm->mnt_uidmap_num));
  if (sm->mask & kSmMntGidmap) o.Set("gidmap", StrList(env, str, avail, sm->mnt_gidmap, sm->mnt_gidmap_num));
  return o;
}

// ---- forked helpers -------------------------------------------------------
// After the raw clone the child makes raw syscalls only (no malloc, no locks,
// no exceptions) and leaves with exit_group. Raw clone skips pthread_atfork
// handlers, which may take locks another thread held at fork time.

void WriteAll(int fd, const void *p, size_t n) {
  const char *c = static_cast<const char *>(p);
  while (n > 0) {
    long w = child::Sys(__NR_write, fd, reinterpret_cast<long>(c), static_cast<long>(n));
    if (w == -EINTR) continue;
    if (w <= 0) return;
    c += w;
    n -= static_cast<size_t>(w);
  }
}

bool ReadAll(int fd, void *p, size_t n) {
  char *c = static_cast<char *>(p);
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Fixed-size error record a child sends: which step failed (FsStep) and its errno.
struct ChildRecord {
  int32_t step;
  int32_t err;
};

// Drops credentials in the child: raw syscalls, so only this (single)
// thread is affected and no glibc setxid broadcast runs.
// Returns 0 or the errno, and the step that failed through *step.
int ChildSetIds(int64_t uid, int64_t gid, bool fsOnly, int32_t *step) {
  using child::Sys;
  if (fsOnly) {
    // setfsgid/setfsuid return the previous value, never an error: check by re-reading.
    if (gid >= 0) {
      Sys(__NR_setfsgid, static_cast<gid_t>(gid));
      if (static_cast<int64_t>(Sys(__NR_setfsgid, -1)) != gid) {
        *step = kFsStepSetgid;
        return EPERM;
      }
    }
    if (uid >= 0) {
      Sys(__NR_setfsuid, static_cast<uid_t>(uid));
      if (static_cast<int64_t>(Sys(__NR_setfsuid, -1)) != uid) {
        *step = kFsStepSetuid;
        return EPERM;
      }
    }
    return 0;
  }
  long r = child::SetGroups(0, nullptr);
  if (r < 0) {
    *step = kFsStepSetgroups;
    return static_cast<int>(-r);
  }
  if (gid >= 0 && (r = child::SetAllGids(gid)) < 0) {
    *step = kFsStepSetgid;
    return static_cast<int>(-r);
  }
  if (uid >= 0 && (r = child::SetAllUids(uid)) < 0) {
    *step = kFsStepSetuid;
    return static_cast<int>(-r);
  }
  if (uid != 0) {
    // A uid change from 0 already clears the sets; clearing them explicitly
    // also covers uid == -1 (ids unchanged) with caps dropped.
    struct {
      uint32_t version;
      int pid;
    } hdr = {0x20080522, 0};
    uint32_t data[6] = {0, 0, 0, 0, 0, 0};
    r = Sys(__NR_capset, reinterpret_cast<long>(&hdr), reinterpret_cast<long>(data));
    if (r < 0) {
      *step = kFsStepCapset;
      return static_cast<int>(-r);
    }
  }
  return 0;
}

// fsOpAs({credMode, uid, gid}, op, dfd, name, mode, chownUid, chownGid)
//   -> {ok, errno, step}
// credMode: 0 root (unchanged), 1 setres ids + caps dropped, 2 fs ids only.
// op: 0 create a regular file, 1 mkdir, 2 fchownat, 3 fchmodat.
// The child sets umask 0 so the mode given is the mode asked for; the caller
// documents that.
Napi::Value FsOpAs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int64_t credMode = ArgInt(info, 0, "credMode");
  int64_t uid = ArgInt(info, 1, "uid");
  int64_t gid = ArgInt(info, 2, "gid");
  int64_t op = ArgInt(info, 3, "op");
  int dfd = ArgDfd(info, 4, "dfd");
  std::string name = ArgString(info, 5, "name");
  uint32_t mode = ArgU32(info, 6, "mode");
  int64_t cu = ArgInt(info, 7, "chownUid");
  int64_t cg = ArgInt(info, 8, "chownGid");
  if (credMode < kCredRoot || credMode > kCredFsIds || op < kFsCreate || op > kFsChmod) ThrowUsage(env, "fsOpAs: bad credMode or op");
  const char *cname = name.c_str();
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) ThrowErrno(env, errno, "pipe2", "creating a result pipe");
  long pid = child::RawFork();
  if (pid < 0) {
    int e = static_cast<int>(-pid);
    close(pipefd[0]);
    close(pipefd[1]);
    ThrowErrno(env, e, "clone", "forking a child to act as another identity");
  }
  if (pid == 0) {
    using child::Sys;
    ChildRecord rec{0, 0};
    Sys(__NR_close, pipefd[0]);
    if (credMode != kCredRoot) rec.err = ChildSetIds(uid, gid, credMode == kCredFsIds, &rec.step);
    if (rec.err == 0) {
      Sys(__NR_umask, 0);
      rec.step = kFsStepOp;
      long r = 0;
      switch (op) {
        case kFsCreate:
          r = Sys(__NR_openat, dfd, reinterpret_cast<long>(cname), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOCTTY,
                  mode);
          if (r >= 0) Sys(__NR_close, r);
          break;
        case kFsMkdir:
          r = Sys(__NR_mkdirat, dfd, reinterpret_cast<long>(cname), mode);
          break;
        case kFsChown:
          r = Sys(__NR_fchownat, dfd, reinterpret_cast<long>(cname), static_cast<uid_t>(cu), static_cast<gid_t>(cg),
                  AT_SYMLINK_NOFOLLOW);
          break;
        case kFsChmod:
          r = Sys(__NR_fchmodat, dfd, reinterpret_cast<long>(cname), mode);
          break;
      }
      rec.err = r < 0 ? static_cast<int32_t>(-r) : 0;
    }
    WriteAll(pipefd[1], &rec, sizeof rec);
    child::ExitGroup(0);
  }
  close(pipefd[1]);
  ChildRecord rec{-1, 0};
  bool got = ReadAll(pipefd[0], &rec, sizeof rec);
  close(pipefd[0]);
  child::ReapPid(pid);
  if (!got) ThrowErrno(env, EPIPE, "read", "reading the result of a child acting as another identity");
  Napi::Object o = Napi::Object::New(env);
  o.Set("errno", Napi::Number::New(env, rec.err));
  o.Set("step", Napi::String::New(env, FsStepName(rec.step)));
  return o;
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("openTree", Napi::Function::New(env, OpenTree, "openTree"));
  exports.Set("openTreeAttr", Napi::Function::New(env, OpenTreeAttr, "openTreeAttr"));
  exports.Set("mountSetattr", Napi::Function::New(env, MountSetattr, "mountSetattr"));
  exports.Set("cloneIdmapped", Napi::Function::New(env, CloneIdmapped, "cloneIdmapped"));
  exports.Set("moveMount", Napi::Function::New(env, MoveMount, "moveMount"));
  exports.Set("fsopen", Napi::Function::New(env, Fsopen, "fsopen"));
  exports.Set("fsconfigString", Napi::Function::New(env, FsconfigString, "fsconfigString"));
  exports.Set("fsconfigCreate", Napi::Function::New(env, FsconfigCreate, "fsconfigCreate"));
  exports.Set("fsmount", Napi::Function::New(env, Fsmount, "fsmount"));
  exports.Set("umount2", Napi::Function::New(env, Umount2, "umount2"));
  exports.Set("mountIdOf", Napi::Function::New(env, MountIdOf, "mountIdOf"));
  exports.Set("fstatAt", Napi::Function::New(env, FstatAt, "fstatAt"));
  exports.Set("statmount", Napi::Function::New(env, Statmount, "statmount"));
  exports.Set("fsOpAs", Napi::Function::New(env, FsOpAs, "fsOpAs"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
