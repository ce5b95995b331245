// Ownership shift: the tree walk and the per-inode changes, in one N-API call
// each, because a shift of 100,000 inodes must stay near the cost of
// `chown -hR` (one crossing of N-API per inode would dominate). This code runs
// in the Node process (not in a clone child), so ordinary C++ is fine here.
//
// The native side decides nothing about ids: the scan reports what is on
// disk, lib/shift computes every target (with the model's idmapped-mount
// translation) and the apply writes exactly those targets. Both walk without
// following symlinks (openat2 RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH from the
// root) and, unless asked, without crossing into other mounts.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <linux/openat2.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "addon.h"

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif
#ifndef STATX_ATTR_IMMUTABLE
#define STATX_ATTR_IMMUTABLE 0x00000010
#endif
#ifndef STATX_ATTR_APPEND
#define STATX_ATTR_APPEND 0x00000020
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#if defined(__x86_64__) || defined(__aarch64__)
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif
#ifndef SYS_listxattrat
#define SYS_listxattrat 465
#endif
#endif

namespace userns {
namespace {

constexpr uint32_t kNoParent = 0xffffffffU;

// Scan flags (per record) and apply operations; lib/shift/native.ts mirrors them.
constexpr uint8_t kHasAclAccess = 1;
constexpr uint8_t kHasAclDefault = 2;
constexpr uint8_t kHasCap = 4;
constexpr uint8_t kImmutable = 8;

constexpr uint8_t kOpChown = 1;
constexpr uint8_t kOpChmod = 2;
constexpr uint8_t kOpAclAccess = 4;
constexpr uint8_t kOpAclDefault = 8;
constexpr uint8_t kOpCap = 16;
constexpr uint8_t kOpVerify = 32;

const char kAclAccess[] = "system.posix_acl_access";
const char kAclDefault[] = "system.posix_acl_default";
const char kCap[] = "security.capability";

// A UsernsError with the path it concerns (NativeError takes errno and syscall only).
[[noreturn]] void ThrowAt(Napi::Env env, int err, const char *syscall, const std::string &what,
                          const std::string &path, int64_t index = -1) {
  Napi::Value v = MakeErrnoError(env, err, syscall, what + " " + path);
  if (v.IsObject()) {
    Napi::Object o = v.As<Napi::Object>();
    o.Set("path", Napi::String::New(env, path));
    if (index >= 0) o.Set("index", Napi::Number::New(env, static_cast<double>(index)));
  }
  throw Napi::Error(env, v);
}

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  ~Fd() { reset(); }
  void reset(int f = -1) {
    if (fd >= 0) close(fd);
    fd = f;
  }
};

// Opens a directory of the tree by its path relative to the root, refusing
// symlinks in every component and any escape from the root; `xdev` also
// refuses crossing a mount. An empty path is the root itself.
int OpenBeneath(int rootfd, const std::string &rel, bool xdev) {
  if (rel.empty()) return fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | (xdev ? RESOLVE_NO_XDEV : 0);
  return static_cast<int>(syscall(SYS_openat2, rootfd, rel.c_str(), &how, sizeof how));
}

std::string Join(const std::string &a, const char *b, size_t blen) {
  std::string s;
  s.reserve(a.size() + 1 + blen);
  s += a;
  if (!a.empty() && a.back() != '/') s += '/';
  s.append(b, blen);
  return s;
}

// Reads a whole xattr value with `get(buf, size)` (an lgetxattr-like call):
// the size first, then the value, again while it grows meanwhile (ERANGE).
// False when absent (err 0) or on failure (err set).
template <typename Get>
bool ReadXattrValue(Get get, std::vector<char> &out, int &err) {
  out.clear();
  err = 0;
  for (int tries = 0; tries < 4; tries++) {
    ssize_t n = get(nullptr, 0);
    if (n < 0) {
      if (errno != ENODATA) err = errno;
      return false;
    }
    out.resize(static_cast<size_t>(n));
    ssize_t m = get(out.data(), out.size());
    if (m >= 0) {
      out.resize(static_cast<size_t>(m));
      return true;
    }
    if (errno != ERANGE) {
      err = errno;
      return false;
    }
  }
  err = ERANGE;
  return false;
}

// lgetxattr into a Buffer; returns empty when absent. Sets err on failure.
bool GetXattr(const std::string &path, const char *name, std::vector<char> &out, int &err) {
  return ReadXattrValue([&](char *buf, size_t size) { return lgetxattr(path.c_str(), name, buf, size); }, out, err);
}

// The *xattrat calls (6.13+) take a directory fd and a name: no path walk
// from the root per inode, which is most of an xattr call's cost otherwise.
// Where the kernel lacks them, the l*xattr calls on the full path.
struct XattrArgs {
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};
#ifdef SYS_listxattrat
bool gHaveXattrAt = true;
#else
bool gHaveXattrAt = false;
#endif

std::string FullOf(const std::string &dirFull, const char *name) {
  return name[0] ? Join(dirFull, name, strlen(name)) : dirFull;
}

// listxattrat(dfd, name, AT_SYMLINK_NOFOLLOW); `name` "" is dfd itself.
ssize_t ListXattrAt(int dfd, const char *name, const std::string &dirFull, char *list, size_t size) {
#ifdef SYS_listxattrat
  if (gHaveXattrAt) {
    long r = syscall(SYS_listxattrat, dfd, name, AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH), list, size);
    if (r >= 0 || errno != ENOSYS) return r;
    gHaveXattrAt = false;
  }
#endif
  return llistxattr(FullOf(dirFull, name).c_str(), list, size);
}

ssize_t GetXattrAtRaw(int dfd, const char *name, const std::string &dirFull, const char *xname, char *val,
                      size_t size) {
#ifdef SYS_getxattrat
  if (gHaveXattrAt) {
    XattrArgs a{reinterpret_cast<uint64_t>(val), static_cast<uint32_t>(size), 0};
    long r = syscall(SYS_getxattrat, dfd, name, AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH), xname, &a,
                     sizeof a);
    if (r >= 0 || errno != ENOSYS) return r;
    gHaveXattrAt = false;
  }
#endif
  return lgetxattr(FullOf(dirFull, name).c_str(), xname, val, size);
}

// GetXattr relative to a directory fd; false when absent. Sets err on failure.
bool GetXattrAt(int dfd, const char *name, const std::string &dirFull, const char *xname, std::vector<char> &out,
                int &err) {
  return ReadXattrValue(
      [&](char *buf, size_t size) { return GetXattrAtRaw(dfd, name, dirFull, xname, buf, size); }, out, err);
}

// lsetxattr relative to a directory fd (setxattrat where the kernel has it).
int SetXattrAt(int dfd, const char *name, const std::string &full, const char *xname, const char *val, size_t size) {
#ifdef SYS_setxattrat
  if (gHaveXattrAt) {
    XattrArgs a{reinterpret_cast<uint64_t>(val), static_cast<uint32_t>(size), 0};
    long r = syscall(SYS_setxattrat, dfd, name, AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH), xname, &a,
                     sizeof a);
    if (r >= 0 || errno != ENOSYS) return static_cast<int>(r);
    gHaveXattrAt = false;
  }
#endif
  return lsetxattr(full.c_str(), xname, val, size, 0);
}

Napi::Buffer<char> ToBuffer(Napi::Env env, const std::vector<char> &v) {
  return Napi::Buffer<char>::Copy(env, v.data(), v.size());
}

template <typename T, typename A>
A TypedCopy(Napi::Env env, const std::vector<T> &v) {
  A a = A::New(env, v.size());
  if (!v.empty()) memcpy(a.Data(), v.data(), v.size() * sizeof(T));
  return a;
}

struct XattrRec {
  uint32_t index;
  std::vector<char> acl, dacl, cap;
  bool hasAcl = false, hasDacl = false, hasCap = false;
};

struct BadXattr {
  uint32_t index;
  const char *name;
  int err;
};

// What one apply worker hit first: turned into a UsernsError on the JS thread.
struct ApplyFailure {
  bool failed = false;
  int err = 0;
  const char *syscall = "";
  std::string what, path;
  int64_t index = -1;
};

// One scan worker's records. Parents are (worker, local index) until the merge.
struct ScanPart {
  std::vector<uint32_t> parentTid, parentIdx, nameOff, uid, gid, mode, nlink;
  std::vector<uint64_t> ino, dev;
  std::vector<uint8_t> flags;
  std::string names;
  std::vector<XattrRec> xattrs;
  std::vector<BadXattr> bad;
  std::vector<std::string> skippedMounts;
};

struct DirItem {
  uint32_t tid, idx;
  std::string rel;
};

struct ScanShared {
  std::string root;
  int rootfd = -1;
  bool crossMounts = false;
  bool xattrs = true;
  std::unordered_set<std::string> exclude;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<DirItem> queue;
  unsigned active = 0;
  std::unordered_set<std::string> seenLinks;  // dev:ino of multiply-linked non-directories
  ApplyFailure fail;
  bool stop = false;
};

constexpr unsigned kScanMask = STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID | STATX_INO | STATX_NLINK;

// Adds one inode to a part: its stat, and its ownership xattrs (one listxattr tells which are there).
uint32_t ScanAdd(ScanPart &pt, uint32_t ptid, uint32_t pidx, const char *name, size_t len, const struct statx &st,
                 int dfd, const char *lname, const std::string &dirFull, ApplyFailure &fail, bool xattrs) {
  uint32_t idx = static_cast<uint32_t>(pt.parentTid.size());
  pt.parentTid.push_back(ptid);
  pt.parentIdx.push_back(pidx);
  pt.nameOff.push_back(static_cast<uint32_t>(pt.names.size()));
  pt.names.append(name, len);
  pt.uid.push_back(st.stx_uid);
  pt.gid.push_back(st.stx_gid);
  pt.mode.push_back(st.stx_mode);
  pt.nlink.push_back(st.stx_nlink);
  pt.ino.push_back(st.stx_ino);
  pt.dev.push_back((static_cast<uint64_t>(st.stx_dev_major) << 32) | st.stx_dev_minor);
  uint8_t f = 0;
  if (st.stx_attributes & (STATX_ATTR_IMMUTABLE | STATX_ATTR_APPEND)) f |= kImmutable;
  if (xattrs && !S_ISLNK(st.stx_mode)) {
    char list[1024];
    ssize_t n = ListXattrAt(dfd, lname, dirFull, list, sizeof list);
    std::vector<char> big;
    const char *lp = list;
    if (n < 0 && errno == ERANGE) {
      ssize_t want = ListXattrAt(dfd, lname, dirFull, nullptr, 0);
      if (want > 0) {
        big.resize(static_cast<size_t>(want));
        n = ListXattrAt(dfd, lname, dirFull, big.data(), big.size());
        lp = big.data();
      }
    }
    if (n < 0 && errno != ENOTSUP) {
      fail = {true, errno, "llistxattr", "listing extended attributes of", FullOf(dirFull, lname), -1};
      n = 0;
    }
    bool a = false, d = false, c = false;
    for (ssize_t p = 0; p < n;) {
      const char *nm = lp + p;
      size_t l = strnlen(nm, static_cast<size_t>(n - p));
      if (strcmp(nm, kAclAccess) == 0) a = true;
      else if (strcmp(nm, kAclDefault) == 0) d = true;
      else if (strcmp(nm, kCap) == 0) c = true;
      p += static_cast<ssize_t>(l) + 1;
    }
    if (a || d || c) {
      XattrRec x;
      x.index = idx;
      int err = 0;
      if (a) {
        x.hasAcl = GetXattrAt(dfd, lname, dirFull, kAclAccess, x.acl, err);
        if (err) pt.bad.push_back({idx, kAclAccess, err});
        if (x.hasAcl) f |= kHasAclAccess;
      }
      if (d) {
        x.hasDacl = GetXattrAt(dfd, lname, dirFull, kAclDefault, x.dacl, err);
        if (err) pt.bad.push_back({idx, kAclDefault, err});
        if (x.hasDacl) f |= kHasAclDefault;
      }
      if (c) {
        x.hasCap = GetXattrAt(dfd, lname, dirFull, kCap, x.cap, err);
        if (err) pt.bad.push_back({idx, kCap, err});
        if (x.hasCap) f |= kHasCap;
      }
      pt.xattrs.push_back(std::move(x));
    }
  }
  pt.flags.push_back(f);
  return idx;
}

// Reads one directory into the worker's part; queues its subdirectories.
void ScanDir(ScanShared &sh, ScanPart &pt, uint32_t tid, const DirItem &item, std::vector<char> &dbuf) {
  const std::string &rel = item.rel;
  std::string full = rel.empty() ? sh.root : Join(sh.root, rel.data(), rel.size());
  ApplyFailure fail;
  Fd dfd(OpenBeneath(sh.rootfd, rel, !sh.crossMounts));
  if (dfd.fd < 0) fail = {true, errno, "openat2", "opening directory", full, -1};
  std::vector<DirItem> subdirs;
  while (!fail.failed) {
    long n = syscall(SYS_getdents64, dfd.fd, dbuf.data(), dbuf.size());
    if (n < 0) {
      fail = {true, static_cast<int>(errno), "getdents64", "reading directory", full, -1};
      break;
    }
    if (n == 0) break;
    for (long p = 0; p < n && !fail.failed;) {
      auto *d = reinterpret_cast<struct dirent64 *>(dbuf.data() + p);
      p += d->d_reclen;
      const char *nm = d->d_name;
      if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
      size_t len = strlen(nm);
      if (rel.empty() && !sh.exclude.empty() && sh.exclude.count(std::string(nm, len))) continue;
      struct statx st;
      if (statx(dfd.fd, nm, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, kScanMask, &st) < 0) {
        fail = {true, errno, "statx", "reading the owner of", Join(full, nm, len), -1};
        break;
      }
      if (S_ISDIR(st.stx_mode) && (st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
          (st.stx_attributes & STATX_ATTR_MOUNT_ROOT) && !sh.crossMounts) {
        // Another mount: neither its root nor anything under it is ours to change.
        pt.skippedMounts.push_back(rel.empty() ? std::string(nm, len) : Join(rel, nm, len));
        continue;
      }
      if (!S_ISDIR(st.stx_mode) && st.stx_nlink > 1) {
        std::string key = std::to_string(st.stx_dev_major) + ":" + std::to_string(st.stx_dev_minor) + ":" +
                          std::to_string(st.stx_ino);
        std::lock_guard<std::mutex> g(sh.mu);
        if (!sh.seenLinks.insert(key).second) continue;  // a hard link of an inode already listed
      }
      uint32_t idx = ScanAdd(pt, item.tid, item.idx, nm, len, st, dfd.fd, nm, full, fail, sh.xattrs);
      if (S_ISDIR(st.stx_mode)) subdirs.push_back({tid, idx, rel.empty() ? std::string(nm, len) : Join(rel, nm, len)});
    }
  }
  std::lock_guard<std::mutex> g(sh.mu);
  if (fail.failed && !sh.fail.failed) sh.fail = fail;
  if (fail.failed) sh.stop = true;
  for (auto &sd : subdirs) sh.queue.push_back(std::move(sd));
}

void ScanWorker(ScanShared &sh, ScanPart &pt, uint32_t tid) {
  std::vector<char> dbuf(1 << 16);
  for (;;) {
    DirItem item;
    {
      std::unique_lock<std::mutex> lk(sh.mu);
      sh.cv.wait(lk, [&] { return sh.stop || !sh.queue.empty() || sh.active == 0; });
      if (sh.stop || sh.queue.empty()) {
        sh.cv.notify_all();
        return;
      }
      item = std::move(sh.queue.front());
      sh.queue.pop_front();
      sh.active++;
    }
    ScanDir(sh, pt, tid, item, dbuf);
    {
      std::lock_guard<std::mutex> g(sh.mu);
      sh.active--;
    }
    sh.cv.notify_all();
  }
}

// shiftScan(root, { crossMounts, exclude, threads }) -> the tree as columns (see lib/kernel/shift.ts).
// Directories are read by `threads` workers from one queue; each directory's
// entries stay together, and the parts are joined with their parent indices
// rebased.
Napi::Value ShiftScan(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  ScanShared sh;
  sh.root = ArgString(info, 0, "root");
  unsigned threads = 1;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    sh.crossMounts = o.Get("crossMounts").ToBoolean();
    Napi::Value ex = o.Get("exclude");
    if (ex.IsArray()) {
      Napi::Array a = ex.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) sh.exclude.insert(a.Get(i).ToString().Utf8Value());
    }
    Napi::Value xv = o.Get("xattrs");
    if (xv.IsBoolean()) sh.xattrs = xv.ToBoolean();
    Napi::Value th = o.Get("threads");
    if (th.IsNumber()) threads = th.ToNumber().Uint32Value();
  }
  if (threads < 1) threads = 1;
  if (threads > 16) threads = 16;
  Fd rootfd(open(sh.root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (rootfd.fd < 0) ThrowAt(env, errno, "open", "opening the tree", sh.root);
  sh.rootfd = rootfd.fd;

  std::vector<ScanPart> parts(threads);
  {
    struct statx st;
    if (statx(rootfd.fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, kScanMask, &st) < 0)
      ThrowAt(env, errno, "statx", "reading the owner of", sh.root);
    ApplyFailure fail;
    uint32_t idx = ScanAdd(parts[0], kNoParent, kNoParent, "", 0, st, rootfd.fd, "", sh.root, fail, sh.xattrs);
    if (fail.failed) ThrowAt(env, fail.err, fail.syscall, fail.what, fail.path);
    sh.queue.push_back({0, idx, ""});
  }
  {
    std::vector<std::thread> ws;
    for (uint32_t t = 1; t < threads; t++) ws.emplace_back([&, t] { ScanWorker(sh, parts[t], t); });
    ScanWorker(sh, parts[0], 0);
    for (auto &w : ws) w.join();
  }
  if (sh.fail.failed) ThrowAt(env, sh.fail.err, sh.fail.syscall, sh.fail.what, sh.fail.path);

  std::vector<uint32_t> base(threads + 1, 0), nameBase(threads + 1, 0);
  for (uint32_t t = 0; t < threads; t++) {
    base[t + 1] = base[t] + static_cast<uint32_t>(parts[t].parentTid.size());
    nameBase[t + 1] = nameBase[t] + static_cast<uint32_t>(parts[t].names.size());
  }
  size_t count = base[threads];
  std::vector<uint32_t> parent, nameOff, uid, gid, mode, nlink;
  std::vector<uint64_t> ino, dev;
  std::vector<uint8_t> flags;
  std::string names;
  parent.reserve(count);
  nameOff.reserve(count + 1);
  for (uint32_t t = 0; t < threads; t++) {
    ScanPart &pt = parts[t];
    for (size_t i = 0; i < pt.parentTid.size(); i++) {
      parent.push_back(pt.parentTid[i] == kNoParent ? kNoParent : base[pt.parentTid[i]] + pt.parentIdx[i]);
      nameOff.push_back(nameBase[t] + pt.nameOff[i]);
    }
    names += pt.names;
    uid.insert(uid.end(), pt.uid.begin(), pt.uid.end());
    gid.insert(gid.end(), pt.gid.begin(), pt.gid.end());
    mode.insert(mode.end(), pt.mode.begin(), pt.mode.end());
    nlink.insert(nlink.end(), pt.nlink.begin(), pt.nlink.end());
    ino.insert(ino.end(), pt.ino.begin(), pt.ino.end());
    dev.insert(dev.end(), pt.dev.begin(), pt.dev.end());
    flags.insert(flags.end(), pt.flags.begin(), pt.flags.end());
  }
  nameOff.push_back(static_cast<uint32_t>(names.size()));

  Napi::Object r = Napi::Object::New(env);
  r.Set("count", Napi::Number::New(env, static_cast<double>(count)));
  r.Set("parent", TypedCopy<uint32_t, Napi::Uint32Array>(env, parent));
  r.Set("nameOff", TypedCopy<uint32_t, Napi::Uint32Array>(env, nameOff));
  r.Set("names", Napi::Buffer<char>::Copy(env, names.data(), names.size()));
  r.Set("uid", TypedCopy<uint32_t, Napi::Uint32Array>(env, uid));
  r.Set("gid", TypedCopy<uint32_t, Napi::Uint32Array>(env, gid));
  r.Set("mode", TypedCopy<uint32_t, Napi::Uint32Array>(env, mode));
  r.Set("nlink", TypedCopy<uint32_t, Napi::Uint32Array>(env, nlink));
  r.Set("flags", TypedCopy<uint8_t, Napi::Uint8Array>(env, flags));
  r.Set("ino", TypedCopy<uint64_t, Napi::BigUint64Array>(env, ino));
  r.Set("dev", TypedCopy<uint64_t, Napi::BigUint64Array>(env, dev));
  Napi::Array xa = Napi::Array::New(env);
  Napi::Array ba = Napi::Array::New(env);
  Napi::Array ma = Napi::Array::New(env);
  uint32_t nx = 0, nb = 0, nm = 0;
  for (uint32_t t = 0; t < threads; t++) {
    for (const XattrRec &x : parts[t].xattrs) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("index", Napi::Number::New(env, base[t] + x.index));
      if (x.hasAcl) o.Set("acl", ToBuffer(env, x.acl));
      if (x.hasDacl) o.Set("dacl", ToBuffer(env, x.dacl));
      if (x.hasCap) o.Set("cap", ToBuffer(env, x.cap));
      xa.Set(nx++, o);
    }
    for (const BadXattr &b : parts[t].bad) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("index", Napi::Number::New(env, base[t] + b.index));
      o.Set("name", Napi::String::New(env, b.name));
      o.Set("errno", Napi::Number::New(env, b.err));
      ba.Set(nb++, o);
    }
    for (const std::string &m : parts[t].skippedMounts) ma.Set(nm++, Napi::String::New(env, m));
  }
  r.Set("xattrs", xa);
  r.Set("badXattrs", ba);
  r.Set("skippedMounts", ma);
  return r;
}

template <typename A>
A ArgTyped(Napi::Object o, const char *key) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray()) ThrowUsage(o.Env(), std::string("plan.") + key + " must be a typed array");
  return v.As<A>();
}

// fchmodat2(AT_SYMLINK_NOFOLLOW) where the kernel has it (6.6+), so a name
// swapped for a symlink is never followed; fchmodat otherwise.
int ChmodNoFollow(int dfd, const char *name, mode_t m) {
  long r = syscall(SYS_fchmodat2, dfd, name, m, AT_SYMLINK_NOFOLLOW);
  if (r < 0 && (errno == ENOSYS)) return fchmodat(dfd, name, m, 0);
  return static_cast<int>(r);
}

struct XattrTarget {
  const char *data[3] = {nullptr, nullptr, nullptr};
  size_t len[3] = {0, 0, 0};
};

// Everything a worker needs, copied out of the JS objects first: worker
// threads never touch N-API.
struct ApplyJob {
  const std::string *root;
  int rootfd;
  bool crossMounts;
  const uint32_t *parent, *nameOff, *uid, *gid, *mode;
  const uint8_t *ops;
  const uint64_t *ino;
  const char *names;
  size_t count;
  const std::vector<int32_t> *xslot;
  const std::vector<XattrTarget> *xt;
};

// Applies records [start, end) of the job (a whole number of directory groups).
void ApplyRange(const ApplyJob &j, size_t start, size_t end, ApplyFailure &fail) {
  const std::string &root = *j.root;
  std::unordered_map<uint32_t, std::string> relCache;
  auto relOf = [&](uint32_t i) -> std::string {
    std::vector<uint32_t> chain;
    for (uint32_t k = i; k != kNoParent; k = j.parent[k]) chain.push_back(k);
    std::string rel;
    for (size_t k = chain.size(); k-- > 0;) {
      uint32_t c = chain[k];
      if (j.parent[c] == kNoParent) continue;
      if (!rel.empty()) rel += '/';
      rel.append(j.names + j.nameOff[c], j.nameOff[c + 1] - j.nameOff[c]);
    }
    return rel;
  };
  auto failAt = [&](int err, const char *sc, const char *what, std::string path, size_t i) {
    fail.failed = true;
    fail.err = err;
    fail.syscall = sc;
    fail.what = what;
    fail.path = std::move(path);
    fail.index = static_cast<int64_t>(i);
  };
  Fd dfd;
  uint32_t openParent = kNoParent - 1;
  std::string dirFull;
  char empty[1] = {0};
  static const char *const kNames[3] = {kAclAccess, kAclDefault, kCap};
  static const uint8_t kBits[3] = {kOpAclAccess, kOpAclDefault, kOpCap};
  for (size_t i = start; i < end; i++) {
    uint8_t op = j.ops[i];
    if (op == 0) continue;
    uint32_t par = j.parent[i];
    int at;
    const char *name;
    std::string nmS;
    int flagsNoFollow;
    if (par == kNoParent) {
      // The root itself: by its fd (AT_EMPTY_PATH).
      at = j.rootfd;
      name = empty;
      flagsNoFollow = AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW;
    } else {
      if (par != openParent) {
        std::string prel = relOf(par);
        dirFull = prel.empty() ? root : Join(root, prel.data(), prel.size());
        dfd.reset(OpenBeneath(j.rootfd, prel, !j.crossMounts));
        if (dfd.fd < 0) return failAt(errno, "openat2", "opening directory", dirFull, i);
        openParent = par;
      }
      at = dfd.fd;
      nmS.assign(j.names + j.nameOff[i], j.nameOff[i + 1] - j.nameOff[i]);
      name = nmS.c_str();
      flagsNoFollow = AT_SYMLINK_NOFOLLOW;
    }
    // The full path only when a path-based call or an error needs it.
    auto pathOf = [&]() { return par == kNoParent ? root : Join(dirFull, nmS.data(), nmS.size()); };
    if (op & kOpVerify) {
      struct statx st;
      if (statx(at, name, flagsNoFollow, STATX_INO | STATX_TYPE, &st) < 0)
        return failAt(errno, "statx", "checking the identity of", pathOf(), i);
      if (st.stx_ino != j.ino[i] || (st.stx_mode & S_IFMT) != (j.mode[i] & S_IFMT))
        return failAt(ESTALE, "statx", "the journal's inode is no longer at", pathOf(), i);
    }
    if (op & kOpChown) {
      if (fchownat(at, name, j.uid[i], j.gid[i], flagsNoFollow) < 0)
        return failAt(errno, "lchown", "changing the owner of", pathOf(), i);
    }
    if (op & (kOpAclAccess | kOpAclDefault | kOpCap)) {
      const std::string path = pathOf();
      int32_t slot = (*j.xslot)[i];
      for (int k = 0; k < 3; k++) {
        if (!(op & kBits[k])) continue;
        const XattrTarget &x = (*j.xt)[static_cast<size_t>(slot)];
        if (x.data[k] == nullptr) return failAt(EINVAL, "lsetxattr", "no value planned for an xattr of", path, i);
        if (SetXattrAt(at, par == kNoParent ? "" : name, path, kNames[k], x.data[k], x.len[k]) < 0)
          return failAt(errno, "lsetxattr", k == 2 ? "setting security.capability of" : "setting the ACL of", path, i);
      }
    }
    if (op & kOpChmod) {
      if (ChmodNoFollow(at, par == kNoParent ? "." : name, j.mode[i] & 07777) < 0)
        return failAt(errno, "fchmodat", "restoring the mode of", pathOf(), i);
    }
  }
}

// shiftApply(root, plan, start, end, threads) -> number of records applied.
// Writes the targets lib/shift computed; every operation is idempotent, so
// resuming or rolling back a half-applied plan is applying it again. Records
// are split between `threads` workers at directory boundaries (each worker
// holds its own directory fd); the first failure wins and is thrown.
Napi::Value ShiftApply(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string root = ArgString(info, 0, "root");
  if (info.Length() < 2 || !info[1].IsObject()) ThrowUsage(env, "plan must be an object");
  Napi::Object plan = info[1].As<Napi::Object>();
  auto parent = ArgTyped<Napi::Uint32Array>(plan, "parent");
  auto nameOff = ArgTyped<Napi::Uint32Array>(plan, "nameOff");
  auto uid = ArgTyped<Napi::Uint32Array>(plan, "uid");
  auto gid = ArgTyped<Napi::Uint32Array>(plan, "gid");
  auto mode = ArgTyped<Napi::Uint32Array>(plan, "mode");
  auto ops = ArgTyped<Napi::Uint8Array>(plan, "ops");
  auto ino = ArgTyped<Napi::BigUint64Array>(plan, "ino");
  Napi::Value nv = plan.Get("names");
  if (!nv.IsBuffer()) ThrowUsage(env, "plan.names must be a Buffer");
  auto names = nv.As<Napi::Buffer<char>>();
  bool crossMounts = plan.Get("crossMounts").ToBoolean();
  size_t count = parent.ElementLength();
  if (nameOff.ElementLength() != count + 1 || uid.ElementLength() != count || gid.ElementLength() != count ||
      mode.ElementLength() != count || ops.ElementLength() != count || ino.ElementLength() != count)
    ThrowUsage(env, "plan columns differ in length");
  for (size_t i = 0; i < count; i++) {
    if (parent[i] != kNoParent && parent[i] >= count) ThrowUsage(env, "plan.parent index out of range");
    if (nameOff[i] > nameOff[i + 1] || nameOff[i + 1] > names.Length()) ThrowUsage(env, "plan.nameOff out of range");
  }
  // Target xattr values by record: a sparse list [{index, acl?, dacl?, cap?}].
  std::vector<int32_t> xslot(count, -1);
  std::vector<XattrTarget> xt;
  Napi::Value xv = plan.Get("xattrs");
  if (xv.IsArray()) {
    Napi::Array xa = xv.As<Napi::Array>();
    xt.resize(xa.Length());
    for (uint32_t i = 0; i < xa.Length(); i++) {
      Napi::Object o = xa.Get(i).As<Napi::Object>();
      double ix = o.Get("index").ToNumber().DoubleValue();
      if (ix < 0 || ix >= count) ThrowUsage(env, "plan.xattrs index out of range");
      xslot[static_cast<size_t>(ix)] = static_cast<int32_t>(i);
      const char *keys[3] = {"acl", "dacl", "cap"};
      for (int k = 0; k < 3; k++) {
        Napi::Value b = o.Get(keys[k]);
        if (b.IsBuffer()) {
          auto buf = b.As<Napi::Buffer<char>>();
          xt[i].data[k] = buf.Data();
          xt[i].len[k] = buf.Length();
        }
      }
    }
  }
  for (size_t i = 0; i < count; i++)
    if ((ops[i] & (kOpAclAccess | kOpAclDefault | kOpCap)) && xslot[i] < 0)
      ThrowUsage(env, "plan.ops asks for an xattr the plan does not give");
  size_t start = info.Length() > 2 && info[2].IsNumber() ? info[2].ToNumber().Uint32Value() : 0;
  size_t end = info.Length() > 3 && info[3].IsNumber() ? info[3].ToNumber().Uint32Value() : count;
  unsigned threads = info.Length() > 4 && info[4].IsNumber() ? info[4].ToNumber().Uint32Value() : 1;
  if (end > count) end = count;
  if (start > end) start = end;
  if (threads < 1) threads = 1;
  if (threads > 16) threads = 16;

  Fd rootfd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (rootfd.fd < 0) ThrowAt(env, errno, "open", "opening the tree", root);

  ApplyJob job{&root,         rootfd.fd,   crossMounts, parent.Data(), nameOff.Data(), uid.Data(),
               gid.Data(),    mode.Data(), ops.Data(),  ino.Data(),    names.Data(),   count,
               &xslot,        &xt};
  // Cut points at changes of parent, so each directory's entries stay with one worker.
  std::vector<size_t> cuts{start};
  for (unsigned t = 1; t < threads; t++) {
    size_t c = start + (end - start) * t / threads;
    while (c < end && c > start && parent[c] == parent[c - 1]) c++;
    if (c > cuts.back() && c < end) cuts.push_back(c);
  }
  cuts.push_back(end);
  std::vector<ApplyFailure> fails(cuts.size() - 1);
  if (cuts.size() == 2) {
    ApplyRange(job, cuts[0], cuts[1], fails[0]);
  } else {
    std::vector<std::thread> ws;
    for (size_t t = 1; t + 1 < cuts.size(); t++)
      ws.emplace_back([&, t] { ApplyRange(job, cuts[t], cuts[t + 1], fails[t]); });
    ApplyRange(job, cuts[0], cuts[1], fails[0]);
    for (auto &w : ws) w.join();
  }
  for (const ApplyFailure &f : fails)
    if (f.failed) ThrowAt(env, f.err, f.syscall, f.what, f.path, f.index);
  return Napi::Number::New(env, static_cast<double>(end - start));
}

// xattrGet(path, name) -> Buffer | null (lgetxattr: never follows a symlink).
Napi::Value XattrGet(const Napi::CallbackInfo &info) {
  std::string path = ArgString(info, 0, "path");
  std::string name = ArgString(info, 1, "name");
  std::vector<char> v;
  int err = 0;
  bool ok = GetXattr(path, name.c_str(), v, err);
  if (err) ThrowAt(info.Env(), err, "lgetxattr", "reading " + name + " of", path);
  if (!ok) return info.Env().Null();
  return ToBuffer(info.Env(), v);
}

// xattrSet(path, name, value) (lsetxattr).
Napi::Value XattrSet(const Napi::CallbackInfo &info) {
  std::string path = ArgString(info, 0, "path");
  std::string name = ArgString(info, 1, "name");
  if (info.Length() < 3 || !info[2].IsBuffer()) ThrowUsage(info.Env(), "value must be a Buffer");
  auto buf = info[2].As<Napi::Buffer<char>>();
  if (lsetxattr(path.c_str(), name.c_str(), buf.Data(), buf.Length(), 0) < 0)
    ThrowAt(info.Env(), errno, "lsetxattr", "setting " + name + " of", path);
  return info.Env().Undefined();
}

// xattrRemove(path, name) -> whether it was there (lremovexattr).
Napi::Value XattrRemove(const Napi::CallbackInfo &info) {
  std::string path = ArgString(info, 0, "path");
  std::string name = ArgString(info, 1, "name");
  if (lremovexattr(path.c_str(), name.c_str()) < 0) {
    if (errno == ENODATA) return Napi::Boolean::New(info.Env(), false);
    ThrowAt(info.Env(), errno, "lremovexattr", "removing " + name + " of", path);
  }
  return Napi::Boolean::New(info.Env(), true);
}

// syncfs(path): makes the filesystem holding path durable (the journal's commit point).
Napi::Value SyncFs(const Napi::CallbackInfo &info) {
  std::string path = ArgString(info, 0, "path");
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.fd < 0) ThrowAt(info.Env(), errno, "open", "opening", path);
  if (syncfs(fd.fd) < 0) ThrowAt(info.Env(), errno, "syncfs", "syncing the filesystem of", path);
  return info.Env().Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("shiftScan", Napi::Function::New(env, ShiftScan, "shiftScan"));
  exports.Set("shiftApply", Napi::Function::New(env, ShiftApply, "shiftApply"));
  exports.Set("xattrGet", Napi::Function::New(env, XattrGet, "xattrGet"));
  exports.Set("xattrSet", Napi::Function::New(env, XattrSet, "xattrSet"));
  exports.Set("xattrRemove", Napi::Function::New(env, XattrRemove, "xattrRemove"));
  exports.Set("syncFs", Napi::Function::New(env, SyncFs, "syncFs"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
