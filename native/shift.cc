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
#include <unordered_set>
#include <vector>

#include "addon.h"

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif
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

// lgetxattr into a Buffer; returns empty when absent. Sets err on failure.
bool GetXattr(const std::string &path, const char *name, std::vector<char> &out, int &err) {
  out.clear();
  err = 0;
  for (int tries = 0; tries < 4; tries++) {
    ssize_t n = lgetxattr(path.c_str(), name, nullptr, 0);
    if (n < 0) {
      if (errno == ENODATA) return false;
      err = errno;
      return false;
    }
    out.resize(static_cast<size_t>(n));
    ssize_t m = lgetxattr(path.c_str(), name, out.data(), out.size());
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

// listxattrat(dfd, name, AT_SYMLINK_NOFOLLOW) where the kernel has it (6.13+):
// no path walk per inode, which is most of the scan's cost otherwise.
ssize_t ListXattrAt(int dfd, const char *name, const std::string &full, char *list, size_t size) {
#ifdef SYS_listxattrat
  static bool have = true;
  if (have) {
    long r = syscall(SYS_listxattrat, dfd, name, AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH), list, size);
    if (r >= 0 || errno != ENOSYS) return r;
    have = false;
  }
#endif
  return llistxattr(full.c_str(), list, size);
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

// shiftScan(root, { crossMounts, exclude }) -> the tree as columns (see lib/shift/native.ts).
Napi::Value ShiftScan(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string root = ArgString(info, 0, "root");
  bool crossMounts = false;
  std::unordered_set<std::string> exclude;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    crossMounts = o.Get("crossMounts").ToBoolean();
    Napi::Value ex = o.Get("exclude");
    if (ex.IsArray()) {
      Napi::Array a = ex.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) exclude.insert(a.Get(i).ToString().Utf8Value());
    }
  }
  Fd rootfd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (rootfd.fd < 0) ThrowAt(env, errno, "open", "opening the tree", root);

  std::vector<uint32_t> parent, nameOff, uid, gid, mode, nlink;
  std::vector<uint64_t> ino, dev;
  std::vector<uint8_t> flags;
  std::string names;
  std::vector<std::string> dirRel;  // relative path of each directory record, by record index
  std::vector<uint32_t> dirIndex;   // BFS queue of directory record indices
  std::vector<XattrRec> xattrs;
  std::vector<BadXattr> bad;
  std::vector<std::string> skippedMounts;
  std::unordered_set<std::string> seenLinks;  // dev:ino of multiply-linked non-directories

  auto add = [&](uint32_t par, const char *name, size_t len, const struct statx &st, int dfd, const char *lname,
                 const std::string &dirFull) {
    uint32_t idx = static_cast<uint32_t>(parent.size());
    parent.push_back(par);
    nameOff.push_back(static_cast<uint32_t>(names.size()));
    names.append(name, len);
    uid.push_back(st.stx_uid);
    gid.push_back(st.stx_gid);
    mode.push_back(st.stx_mode);
    nlink.push_back(st.stx_nlink);
    ino.push_back(st.stx_ino);
    dev.push_back((static_cast<uint64_t>(st.stx_dev_major) << 32) | st.stx_dev_minor);
    uint8_t f = 0;
    if (st.stx_attributes & (STATX_ATTR_IMMUTABLE | STATX_ATTR_APPEND)) f |= kImmutable;
    if (!S_ISLNK(st.stx_mode)) {
      // One listxattr per inode tells whether any of the three names is there.
      const std::string full = lname[0] ? Join(dirFull, lname, strlen(lname)) : dirFull;
      char list[1024];
      ssize_t n = ListXattrAt(dfd, lname, full, list, sizeof list);
      std::vector<char> big;
      const char *lp = list;
      if (n < 0 && errno == ERANGE) {
        ssize_t want = ListXattrAt(dfd, lname, full, nullptr, 0);
        if (want > 0) {
          big.resize(static_cast<size_t>(want));
          n = ListXattrAt(dfd, lname, full, big.data(), big.size());
          lp = big.data();
        }
      }
      if (n < 0 && errno != ENOTSUP) ThrowAt(env, errno, "llistxattr", "listing extended attributes of", full, idx);
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
          x.hasAcl = GetXattr(full, kAclAccess, x.acl, err);
          if (err) bad.push_back({idx, kAclAccess, err});
          if (x.hasAcl) f |= kHasAclAccess;
        }
        if (d) {
          x.hasDacl = GetXattr(full, kAclDefault, x.dacl, err);
          if (err) bad.push_back({idx, kAclDefault, err});
          if (x.hasDacl) f |= kHasAclDefault;
        }
        if (c) {
          x.hasCap = GetXattr(full, kCap, x.cap, err);
          if (err) bad.push_back({idx, kCap, err});
          if (x.hasCap) f |= kHasCap;
        }
        xattrs.push_back(std::move(x));
      }
    }
    flags.push_back(f);
    return idx;
  };

  const unsigned kMask = STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID | STATX_INO | STATX_NLINK | STATX_MNT_ID;
  {
    struct statx st;
    if (statx(rootfd.fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, kMask, &st) < 0)
      ThrowAt(env, errno, "statx", "reading the owner of", root);
    uint32_t idx = add(kNoParent, "", 0, st, rootfd.fd, "", root);
    dirRel.resize(1);
    dirIndex.push_back(idx);
  }

  std::vector<char> dbuf(1 << 16);
  for (size_t q = 0; q < dirIndex.size(); q++) {
    uint32_t di = dirIndex[q];
    std::string rel = dirRel[di];
    std::string full = rel.empty() ? root : Join(root, rel.data(), rel.size());
    Fd dfd(OpenBeneath(rootfd.fd, rel, !crossMounts));
    if (dfd.fd < 0) ThrowAt(env, errno, "openat2", "opening directory", full, di);
    for (;;) {
      long n = syscall(SYS_getdents64, dfd.fd, dbuf.data(), dbuf.size());
      if (n < 0) ThrowAt(env, errno, "getdents64", "reading directory", full, di);
      if (n == 0) break;
      for (long p = 0; p < n;) {
        auto *d = reinterpret_cast<struct dirent64 *>(dbuf.data() + p);
        p += d->d_reclen;
        const char *nm = d->d_name;
        if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
        size_t len = strlen(nm);
        if (rel.empty() && !exclude.empty() && exclude.count(std::string(nm, len))) continue;
        struct statx st;
        if (statx(dfd.fd, nm, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, kMask, &st) < 0)
          ThrowAt(env, errno, "statx", "reading the owner of", Join(full, nm, len));
        if (S_ISDIR(st.stx_mode) && (st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
            (st.stx_attributes & STATX_ATTR_MOUNT_ROOT) && !crossMounts) {
          // Another mount: neither its root nor anything under it is ours to change.
          skippedMounts.push_back(rel.empty() ? std::string(nm, len) : Join(rel, nm, len));
          continue;
        }
        if (!S_ISDIR(st.stx_mode) && st.stx_nlink > 1) {
          std::string key = std::to_string(st.stx_dev_major) + ":" + std::to_string(st.stx_dev_minor) + ":" +
                            std::to_string(st.stx_ino);
          if (!seenLinks.insert(key).second) continue;  // a hard link of an inode already listed
        }
        uint32_t idx = add(di, nm, len, st, dfd.fd, nm, full);
        if (S_ISDIR(st.stx_mode)) {
          if (dirRel.size() <= idx) dirRel.resize(idx + 1);
          dirRel[idx] = rel.empty() ? std::string(nm, len) : Join(rel, nm, len);
          dirIndex.push_back(idx);
        }
      }
    }
    dirRel[di].clear();
    dirRel[di].shrink_to_fit();
  }
  nameOff.push_back(static_cast<uint32_t>(names.size()));

  Napi::Object r = Napi::Object::New(env);
  r.Set("count", Napi::Number::New(env, static_cast<double>(parent.size())));
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
  Napi::Array xa = Napi::Array::New(env, xattrs.size());
  for (size_t i = 0; i < xattrs.size(); i++) {
    const XattrRec &x = xattrs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Napi::Number::New(env, x.index));
    if (x.hasAcl) o.Set("acl", ToBuffer(env, x.acl));
    if (x.hasDacl) o.Set("dacl", ToBuffer(env, x.dacl));
    if (x.hasCap) o.Set("cap", ToBuffer(env, x.cap));
    xa.Set(static_cast<uint32_t>(i), o);
  }
  r.Set("xattrs", xa);
  Napi::Array ba = Napi::Array::New(env, bad.size());
  for (size_t i = 0; i < bad.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Napi::Number::New(env, bad[i].index));
    o.Set("name", Napi::String::New(env, bad[i].name));
    o.Set("errno", Napi::Number::New(env, bad[i].err));
    ba.Set(static_cast<uint32_t>(i), o);
  }
  r.Set("badXattrs", ba);
  Napi::Array ma = Napi::Array::New(env, skippedMounts.size());
  for (size_t i = 0; i < skippedMounts.size(); i++)
    ma.Set(static_cast<uint32_t>(i), Napi::String::New(env, skippedMounts[i]));
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

// shiftApply(root, plan, start, end) -> number of records applied. Writes the
// targets lib/shift computed; every operation is idempotent, so resuming or
// rolling back a half-applied plan is applying it again.
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
  // Target xattr values by record: a sparse list [{index, acl?, dacl?, cap?}].
  std::vector<int32_t> xslot(count, -1);
  Napi::Value xv = plan.Get("xattrs");
  Napi::Array xa = xv.IsArray() ? xv.As<Napi::Array>() : Napi::Array::New(env);
  for (uint32_t i = 0; i < xa.Length(); i++) {
    Napi::Object o = xa.Get(i).As<Napi::Object>();
    double ix = o.Get("index").ToNumber().DoubleValue();
    if (ix < 0 || ix >= count) ThrowUsage(env, "plan.xattrs index out of range");
    xslot[static_cast<size_t>(ix)] = static_cast<int32_t>(i);
  }
  size_t start = info.Length() > 2 ? info[2].ToNumber().Uint32Value() : 0;
  size_t end = info.Length() > 3 ? info[3].ToNumber().Uint32Value() : count;
  if (end > count) end = count;

  Fd rootfd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (rootfd.fd < 0) ThrowAt(env, errno, "open", "opening the tree", root);

  // Directory relative paths, built on demand from the parent chain.
  std::vector<std::string> relCache(count);
  std::vector<bool> relKnown(count, false);
  const char *nm = names.Data();
  auto relOf = [&](uint32_t i) -> const std::string & {
    std::vector<uint32_t> chain;
    uint32_t j = i;
    while (j != kNoParent && !relKnown[j]) {
      chain.push_back(j);
      j = parent[j];
    }
    for (size_t k = chain.size(); k-- > 0;) {
      uint32_t c = chain[k];
      uint32_t p = parent[c];
      if (p == kNoParent) relCache[c].clear();
      else {
        const std::string &pr = relCache[p];
        relCache[c] = pr.empty() ? std::string(nm + nameOff[c], nameOff[c + 1] - nameOff[c])
                                 : Join(pr, nm + nameOff[c], nameOff[c + 1] - nameOff[c]);
      }
      relKnown[c] = true;
    }
    return relCache[i];
  };

  Fd dfd;
  uint32_t openParent = kNoParent - 1;
  std::string dirFull;
  char empty[1] = {0};
  for (size_t i = start; i < end; i++) {
    uint8_t op = ops[i];
    if (op == 0) continue;
    uint32_t par = parent[i];
    int at;
    const char *name;
    std::string nmS;
    int flagsNoFollow;
    if (par == kNoParent) {
      // The root itself: by its fd (AT_EMPTY_PATH).
      at = rootfd.fd;
      name = empty;
      flagsNoFollow = AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW;
    } else {
      if (par != openParent) {
        const std::string &prel = relOf(par);
        dirFull = prel.empty() ? root : Join(root, prel.data(), prel.size());
        dfd.reset(OpenBeneath(rootfd.fd, prel, !crossMounts));
        if (dfd.fd < 0) ThrowAt(env, errno, "openat2", "opening directory", dirFull, i);
        openParent = par;
      }
      at = dfd.fd;
      nmS.assign(nm + nameOff[i], nameOff[i + 1] - nameOff[i]);
      name = nmS.c_str();
      flagsNoFollow = AT_SYMLINK_NOFOLLOW;
    }
    // The full path only when a path-based call or an error needs it.
    auto pathOf = [&]() { return par == kNoParent ? root : Join(dirFull, nmS.data(), nmS.size()); };
    if (op & kOpVerify) {
      struct statx st;
      if (statx(at, name, flagsNoFollow, STATX_INO | STATX_TYPE, &st) < 0)
        ThrowAt(env, errno, "statx", "checking the identity of", pathOf(), static_cast<int64_t>(i));
      if (st.stx_ino != ino[i] || (st.stx_mode & S_IFMT) != (mode[i] & S_IFMT))
        ThrowAt(env, ESTALE, "statx", "the journal's inode is no longer at", pathOf(), static_cast<int64_t>(i));
    }
    if (op & kOpChown) {
      if (fchownat(at, name, uid[i], gid[i], flagsNoFollow) < 0)
        ThrowAt(env, errno, "lchown", "changing the owner of", pathOf(), static_cast<int64_t>(i));
    }
    if (op & (kOpAclAccess | kOpAclDefault | kOpCap)) {
      if (xslot[i] < 0) ThrowUsage(env, "plan.ops asks for an xattr the plan does not give");
      Napi::Object o = xa.Get(static_cast<uint32_t>(xslot[i])).As<Napi::Object>();
      const std::string path = pathOf();
      struct {
        uint8_t bit;
        const char *key;
        const char *name;
      } const items[] = {{kOpAclAccess, "acl", kAclAccess}, {kOpAclDefault, "dacl", kAclDefault}, {kOpCap, "cap", kCap}};
      for (const auto &it : items) {
        if (!(op & it.bit)) continue;
        Napi::Value b = o.Get(it.key);
        if (!b.IsBuffer()) ThrowUsage(env, std::string("plan.xattrs[].") + it.key + " must be a Buffer");
        auto buf = b.As<Napi::Buffer<char>>();
        if (lsetxattr(path.c_str(), it.name, buf.Data(), buf.Length(), 0) < 0)
          ThrowAt(env, errno, "lsetxattr", std::string("setting ") + it.name + " of", path, static_cast<int64_t>(i));
      }
    }
    if (op & kOpChmod) {
      if (ChmodNoFollow(at, par == kNoParent ? "." : name, mode[i] & 07777) < 0)
        ThrowAt(env, errno, "fchmodat", "restoring the mode of", pathOf(), static_cast<int64_t>(i));
    }
  }
  return Napi::Number::New(env, static_cast<double>(end > start ? end - start : 0));
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
