// The hot loop of the user-namespace inventory (lib/inventory): one pass over
// /proc in C++, because on a host with thousands of processes the per-call
// cost of Node's fs functions (a readlink per namespace link and per fd, three
// small file reads per namespace) is most of the time.
//
// Per process: readlink /proc/PID/ns/user (EACCES = not ours to look into),
// optionally each /proc/PID/fd/N that is a namespace file, and
// /proc/PID/ns/mnt (the first pid of each mount namespace is reported, for
// its mountinfo). Per user namespace found: open it through one of its
// processes, check the inode, ask nsfs for NS_GET_ID, NS_GET_OWNER_UID and
// the parent (NS_GET_PARENT: inode and id, or EPERM at the top of this
// process's view), and read uid_map, gid_map and setgroups from that
// process, then readlink again: a process that changed namespace in between
// no longer names it, and the next process of the namespace is tried. All of
// it happens while the walk is at that process, through its /proc/PID
// directory fd: paths are resolved once per process, and a pid that exits
// and is reused cannot be reached through the old fd. Most of the cost is the
// kernel's (/proc lookups, seq files), so the walk is split into runs of
// processes that several threads take in turn (as many as the cores, up to
// four), merged in /proc's order; scanProcUsernsAsync does the same off the
// JS thread, for a caller that has other work meanwhile (the CLI loads its
// modules).
#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "addon.h"
#include "nsfs-ioctl.h"


namespace userns {
namespace {

// "user:[4026531837]" -> type "user", ino. Returns false for other links.
bool ParseNsLink(const char *link, size_t len, std::string *type, uint64_t *ino) {
  const char *open = static_cast<const char *>(memchr(link, '[', len));
  if (open == nullptr || open == link || open[-1] != ':' || link[len - 1] != ']') return false;
  size_t tlen = static_cast<size_t>(open - link) - 1;
  static const char *const kTypes[] = {"user", "mnt", "pid", "uts", "ipc", "net", "cgroup", "time"};
  bool known = false;
  for (const char *t : kTypes) {
    if (strlen(t) == tlen && memcmp(t, link, tlen) == 0) known = true;
  }
  if (!known) return false;
  uint64_t v = 0;
  const char *p = open + 1;
  const char *end = link + len - 1;
  if (p == end) return false;
  for (; p < end; p++) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + static_cast<uint64_t>(*p - '0');
  }
  type->assign(link, tlen);
  *ino = v;
  return true;
}

// readlink into buf; returns length or -1 with errno.
ssize_t ReadLink(const char *path, char *buf, size_t size) {
  ssize_t n = readlink(path, buf, size - 1);
  if (n >= 0) buf[n] = 0;
  return n;
}

// What the walk learned of one user namespace, filled in at the first of its processes that lets it.
struct NsRec {
  std::vector<int> pids;
  bool opened = false;  // identity, id, owner and parent below are set
  uint64_t dev = 0;
  bool has_id = false;
  uint64_t id = 0;
  bool has_owner = false;
  uid_t owner = 0;
  bool has_parent = false;
  uint64_t parent_ino = 0;
  bool has_parent_id = false;
  uint64_t parent_id = 0;
  int parent_errno = 0;
  int maps_pid = 0;  // 0 until the maps were read
  std::string uid_map, gid_map, setgroups;
};

bool ReadSmallAt(int dir, const char *name, std::string *out) {
  int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return false;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

// Asks nsfs about the namespace of the process at `pdir` (an O_PATH fd of /proc/PID, so every lookup stays on
// that process: if it exits, they fail instead of reaching a reused pid), then reads its maps. The link is read
// again after the maps: a process that changed namespace in between no longer names `ino`, and the next
// process of the namespace is tried.
void Visit(int pdir, int pid, uint64_t ino, NsRec *rec) {
  if (!rec->opened) {
    int fd = openat(pdir, "ns/user", O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) < 0 || static_cast<uint64_t>(st.st_ino) != ino) {
      close(fd);
      return;
    }
    rec->opened = true;
    rec->dev = static_cast<uint64_t>(st.st_dev);
    rec->has_id = ioctl(fd, NS_GET_ID, &rec->id) == 0;
    rec->has_owner = ioctl(fd, NS_GET_OWNER_UID, &rec->owner) == 0;
    int pfd = ioctl(fd, NS_GET_PARENT);
    if (pfd >= 0) {
      struct stat pst;
      if (fstat(pfd, &pst) == 0) {
        rec->has_parent = true;
        rec->parent_ino = static_cast<uint64_t>(pst.st_ino);
      }
      rec->has_parent_id = ioctl(pfd, NS_GET_ID, &rec->parent_id) == 0;
      close(pfd);
    } else {
      rec->parent_errno = errno;
    }
    close(fd);
  }
  if (!ReadSmallAt(pdir, "uid_map", &rec->uid_map) || !ReadSmallAt(pdir, "gid_map", &rec->gid_map) ||
      !ReadSmallAt(pdir, "setgroups", &rec->setgroups))
    return;
  char link[64];
  ssize_t n = readlinkat(pdir, "ns/user", link, sizeof link - 1);
  std::string type;
  uint64_t again = 0;
  if (n <= 0 || !ParseNsLink(link, static_cast<size_t>(n), &type, &again) || again != ino) return;
  rec->maps_pid = pid;
}

struct FdRec {
  int pid;
  int fd;
  std::string type;
  uint64_t ino;
};

// What one run of /proc entries gave; runs are walked by several threads and merged in /proc's order.
struct Block {
  std::vector<uint64_t> order;  // user namespaces in the order their first process came
  std::unordered_map<uint64_t, NsRec> users;
  std::vector<FdRec> fds;
  std::vector<std::pair<uint64_t, int>> mnts;  // each mount namespace's first pid in this run
  int processes = 0, hidden = 0;
};

// The walk of one process, through `procfd` (an fd of /proc).
void WalkProcess(int procfd, int pid, bool want_fds, Block *out) {
  char name[16], path[320], link[128];
  std::string type;
  snprintf(name, sizeof name, "%d", pid);
  out->processes++;
  // Every later lookup is relative to this directory: /proc and the pid are resolved once per process.
  int pdir = openat(procfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (pdir < 0) return;
  ssize_t n = readlinkat(pdir, "ns/user", link, sizeof link - 1);
  if (n >= 0) link[n] = 0;
  uint64_t ino = 0;
  if (n < 0) {
    if (errno == EACCES || errno == EPERM) {
      out->hidden++;
      close(pdir);
      return;
    }
    if (errno != ENOENT) {
      close(pdir);
      return;
    }
    // An exited thread-group leader with live threads: ask its tasks.
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *tasks = opendir(path);
    if (tasks == nullptr) {
      close(pdir);
      return;
    }
    for (struct dirent *t; (t = readdir(tasks)) != nullptr;) {
      if (t->d_name[0] < '0' || t->d_name[0] > '9') continue;
      snprintf(path, sizeof path, "/proc/%d/task/%s/ns/user", pid, t->d_name);
      n = ReadLink(path, link, sizeof link);
      if (n > 0) break;
    }
    closedir(tasks);
    if (n <= 0) {
      close(pdir);
      return;
    }
  }
  if (!ParseNsLink(link, static_cast<size_t>(n), &type, &ino)) {
    close(pdir);
    return;
  }
  auto it = out->users.find(ino);
  if (it == out->users.end()) {
    out->order.push_back(ino);
    it = out->users.emplace(ino, NsRec()).first;
  }
  it->second.pids.push_back(pid);
  if (it->second.maps_pid == 0) Visit(pdir, pid, ino, &it->second);
  if (want_fds) {
    int dfd = openat(pdir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *fdir = dfd < 0 ? nullptr : fdopendir(dfd);
    if (fdir == nullptr && dfd >= 0) close(dfd);
    if (fdir != nullptr) {
      for (struct dirent *f; (f = readdir(fdir)) != nullptr;) {
        if (f->d_name[0] < '0' || f->d_name[0] > '9') continue;
        ssize_t m = readlinkat(dirfd(fdir), f->d_name, link, sizeof link - 1);
        // Namespace links are short and end in ']'; most fds are files, pipes and sockets.
        if (m <= 0 || m > 24 || link[m - 1] != ']') continue;
        link[m] = 0;
        uint64_t fino = 0;
        if (ParseNsLink(link, static_cast<size_t>(m), &type, &fino))
          out->fds.push_back({pid, atoi(f->d_name), type, fino});
      }
      closedir(fdir);
    }
  }
  uint64_t mino = 0;
  ssize_t mn = readlinkat(pdir, "ns/mnt", link, sizeof link - 1);
  if (mn > 0 && ParseNsLink(link, static_cast<size_t>(mn), &type, &mino)) {
    bool seen = false;
    for (const auto &m : out->mnts) seen = seen || m.first == mino;
    if (!seen) out->mnts.emplace_back(mino, pid);
  }
  close(pdir);
}

// The whole walk, merged: what scanProcUserns returns, before it becomes JS values.
struct Scan {
  int err = 0;  // errno of opendir("/proc"), else 0
  std::vector<uint64_t> order;
  std::unordered_map<uint64_t, NsRec> users;
  std::vector<FdRec> fds;
  std::vector<std::pair<uint64_t, int>> mnts;
  int processes = 0, hidden = 0;
};

// Processes per run: small enough that a thread the scheduler holds back leaves little for the others to wait
// on, large enough that the per-run merge is negligible.
constexpr size_t kRun = 32;

// Walks /proc with up to `threads` threads (the caller's included). Most of the time is the kernel's (path
// lookups and seq files in /proc), which runs in parallel on as many cores; runs of kRun processes are handed
// out in order and merged in order, so the result is the one a single pass in /proc's order gives.
void WalkProc(bool want_fds, unsigned threads, Scan *out) {
  DIR *proc = opendir("/proc");
  if (proc == nullptr) {
    out->err = errno;
    return;
  }
  std::vector<int> pids;
  for (struct dirent *d; (d = readdir(proc)) != nullptr;) {
    if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
    pids.push_back(atoi(d->d_name));
  }
  const int procfd = dirfd(proc);
  // NS_GET_PARENT opens the parent's nsfs file, and nsfs makes an inode for a namespace none of whose files is
  // open: holding one of this process's own (the parent of the namespaces right below it) spares one per call.
  int self_ns = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
  const size_t nruns = (pids.size() + kRun - 1) / kRun;
  std::vector<Block> blocks(nruns);
  std::atomic<size_t> next{0};
  auto work = [&]() {
    for (size_t b; (b = next.fetch_add(1)) < nruns;) {
      size_t end = std::min(pids.size(), (b + 1) * kRun);
      for (size_t i = b * kRun; i < end; i++) WalkProcess(procfd, pids[i], want_fds, &blocks[b]);
    }
  };
  std::vector<std::thread> helpers;
  for (unsigned k = 1; k < threads && k < nruns; k++) {
    try {
      helpers.emplace_back(work);
    } catch (const std::system_error &) {
      break;  // no thread to be had: the others do its share
    }
  }
  work();
  for (auto &t : helpers) t.join();
  if (self_ns >= 0) close(self_ns);
  closedir(proc);
  std::unordered_set<uint64_t> mnt_seen;
  for (Block &b : blocks) {
    out->processes += b.processes;
    out->hidden += b.hidden;
    for (uint64_t ino : b.order) {
      NsRec &src = b.users[ino];
      auto it = out->users.find(ino);
      if (it == out->users.end()) {
        out->order.push_back(ino);
        out->users.emplace(ino, std::move(src));
        continue;
      }
      NsRec &dst = it->second;
      dst.pids.insert(dst.pids.end(), src.pids.begin(), src.pids.end());
      if (!dst.opened && src.opened) {
        std::vector<int> pids_kept = std::move(dst.pids);
        int maps_pid = dst.maps_pid;
        std::string u = std::move(dst.uid_map), g = std::move(dst.gid_map), sg = std::move(dst.setgroups);
        dst = src;
        dst.pids = std::move(pids_kept);
        dst.maps_pid = maps_pid;
        dst.uid_map = std::move(u);
        dst.gid_map = std::move(g);
        dst.setgroups = std::move(sg);
      }
      if (dst.maps_pid == 0 && src.maps_pid != 0) {
        dst.maps_pid = src.maps_pid;
        dst.uid_map = std::move(src.uid_map);
        dst.gid_map = std::move(src.gid_map);
        dst.setgroups = std::move(src.setgroups);
      }
    }
    out->fds.insert(out->fds.end(), b.fds.begin(), b.fds.end());
    for (const auto &m : b.mnts)
      if (mnt_seen.insert(m.first).second) out->mnts.push_back(m);
  }
}

unsigned WalkThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n > 4 ? 4 : n;
}

Napi::Object ToJs(Napi::Env env, Scan &scan) {
  Napi::Array nss = Napi::Array::New(env, scan.order.size());
  uint32_t k = 0;
  for (uint64_t ino : scan.order) {
    const NsRec &rec = scan.users[ino];
    Napi::Object o = Napi::Object::New(env);
    o.Set("ino", Napi::BigInt::New(env, ino));
    Napi::Array pids = Napi::Array::New(env, rec.pids.size());
    for (size_t i = 0; i < rec.pids.size(); i++) pids.Set(static_cast<uint32_t>(i), Napi::Number::New(env, rec.pids[i]));
    o.Set("pids", pids);
    if (rec.opened) {
      o.Set("dev", Napi::BigInt::New(env, rec.dev));
      if (rec.has_id) o.Set("id", Napi::BigInt::New(env, rec.id));
      if (rec.has_owner) o.Set("ownerUid", Napi::Number::New(env, rec.owner));
      if (rec.has_parent) o.Set("parentIno", Napi::BigInt::New(env, rec.parent_ino));
      if (rec.has_parent_id) o.Set("parentId", Napi::BigInt::New(env, rec.parent_id));
      if (rec.parent_errno != 0) o.Set("parentErrno", Napi::Number::New(env, rec.parent_errno));
    }
    if (rec.maps_pid != 0) {
      o.Set("mapsPid", Napi::Number::New(env, rec.maps_pid));
      o.Set("uidMap", Napi::String::New(env, rec.uid_map));
      o.Set("gidMap", Napi::String::New(env, rec.gid_map));
      o.Set("setgroups", Napi::String::New(env, rec.setgroups));
    }
    nss.Set(k++, o);
  }
  Napi::Array fa = Napi::Array::New(env, scan.fds.size());
  for (size_t i = 0; i < scan.fds.size(); i++) {
    Napi::Array r = Napi::Array::New(env, 4);
    r.Set(0u, Napi::Number::New(env, scan.fds[i].pid));
    r.Set(1u, Napi::Number::New(env, scan.fds[i].fd));
    r.Set(2u, Napi::String::New(env, scan.fds[i].type));
    r.Set(3u, Napi::BigInt::New(env, scan.fds[i].ino));
    fa.Set(static_cast<uint32_t>(i), r);
  }
  Napi::Array ma = Napi::Array::New(env, scan.mnts.size());
  for (size_t i = 0; i < scan.mnts.size(); i++) {
    Napi::Array r = Napi::Array::New(env, 2);
    r.Set(0u, Napi::BigInt::New(env, scan.mnts[i].first));
    r.Set(1u, Napi::Number::New(env, scan.mnts[i].second));
    ma.Set(static_cast<uint32_t>(i), r);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("processes", Napi::Number::New(env, scan.processes));
  out.Set("hidden", Napi::Number::New(env, scan.hidden));
  out.Set("namespaces", nss);
  out.Set("fds", fa);
  out.Set("mntNamespaces", ma);
  return out;
}

bool WantFds(const Napi::CallbackInfo &info) {
  return info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
}

// scanProcUserns(wantFds) -> { processes, hidden, namespaces: [...], fds: [...], mntNamespaces: [[ino, pid]...] }
Napi::Value ScanProcUserns(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Scan scan;
  WalkProc(WantFds(info), WalkThreads(), &scan);
  if (scan.err != 0) ThrowErrno(env, scan.err, "opendir", "listing /proc");
  return ToJs(env, scan);
}

// The same walk off the JS thread, so a caller can load its modules meanwhile.
class ScanWorker : public Napi::AsyncWorker {
 public:
  ScanWorker(Napi::Env env, bool want_fds)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), want_fds_(want_fds) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    WalkProc(want_fds_, WalkThreads(), &scan_);
    if (scan_.err != 0) SetError("opendir");
  }
  void OnOK() override { deferred_.Resolve(ToJs(Env(), scan_)); }
  void OnError(const Napi::Error &) override {
    deferred_.Reject(MakeErrnoError(Env(), scan_.err, "opendir", "listing /proc"));
  }

 private:
  Napi::Promise::Deferred deferred_;
  bool want_fds_;
  Scan scan_;
};

// scanProcUsernsAsync(wantFds) -> Promise of what scanProcUserns returns.
Napi::Value ScanProcUsernsAsync(const Napi::CallbackInfo &info) {
  auto *w = new ScanWorker(info.Env(), WantFds(info));
  Napi::Promise promise = w->Promise();
  w->Queue();
  return promise;
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("scanProcUserns", Napi::Function::New(env, ScanProcUserns, "scanProcUserns"));
  exports.Set("scanProcUsernsAsync", Napi::Function::New(env, ScanProcUsernsAsync, "scanProcUsernsAsync"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
