"""Minimal idmapped-mount case runner used by test/kernel/model-mountcases.test.ts.

It asks the kernel what the mount-case predictor (lib/model/mountcases.ts)
predicts, for the fields that test compares. It must run as root inside a
private mount namespace (the test starts it as
`unshare --mount --propagation private python3 mount-runner.py BASE`);
it never touches the host's mounts. Cases come as JSON lines on stdin,
results go to stdout in the case-formats §2 shape, under the assumptions
[A1]-[A6] documented in mountcases.ts.
"""
import ctypes
import errno as E
import json
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR, SYS_OPEN_TREE_ATTR, SYS_CAPSET = 428, 429, 442, 467, 126
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = -100, 0x1000, 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 4
MOUNT_ATTR_IDMAP = 0x100000
CLONE_NEWUSER = 0x10000000


def err():
    return E.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def sc(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *args)
    return r, (None if r >= 0 else err())


def attr(set_, clr, fd):
    return ctypes.create_string_buffer(struct.pack("QQQQ", set_, clr, 0, fd), 32)


def octal(m):
    return format(m & 0o7777, "04o")


def new_userns(uid_map, gid_map, setgroups, owner):
    """A holder child in a new user namespace; root of init writes its files. Returns (nsfd, cleanup, failure)."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        # Keep only our two pipe ends: an inherited end of another holder's pipe would keep it alive.
        os.closerange(3, ready_w)
        os.closerange(ready_w + 1, hold_r)
        os.closerange(hold_r + 1, 1 << 16)
        if owner is not None:
            os.setresgid(owner, owner, owner)
            os.setresuid(owner, owner, owner)
        ok = libc.unshare(CLONE_NEWUSER) == 0
        os.write(ready_w, b"1" if ok else b"0")
        os.read(hold_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    ok = os.read(ready_r, 1) == b"1"
    os.close(ready_r)

    def cleanup():
        os.close(hold_w)
        os.waitpid(pid, 0)

    if not ok:
        cleanup()
        raise RuntimeError("unshare(CLONE_NEWUSER) failed in the holder")
    for step, text in (("setgroups", setgroups), ("uid_map", uid_map), ("gid_map", gid_map)):
        if text is None:
            continue
        fd = os.open(f"/proc/{pid}/{step}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        except OSError as e:
            os.close(fd)
            cleanup()
            return None, None, (step, E.errorcode[e.errno])
        os.close(fd)
    nsfd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    return nsfd, cleanup, None


def as_child(as_, fn):
    """Runs fn() in a forked child under the case's credentials; returns the errno name or None."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if as_ is not None and ("fsuid" in as_ or "fsgid" in as_):
                libc.setfsgid(as_.get("fsgid", 0))
                libc.setfsuid(as_.get("fsuid", 0))
            elif as_ is not None:
                os.setgroups([])
                g, u = as_.get("gid"), as_.get("uid")
                if g is not None:
                    os.setresgid(g, g, g)
                if u is not None:
                    os.setresuid(u, u, u)
                if u != 0:
                    hdr = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0), 8)
                    data = ctypes.create_string_buffer(24)
                    if libc.syscall(ctypes.c_long(SYS_CAPSET), hdr, data) != 0:
                        os._exit(200)
            os.umask(0)
            fn()
        except OSError as e:
            code = e.errno
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return None if code == 0 else E.errorcode.get(code, str(code))


def run(case, base):
    out = {"id": case.get("id")}
    src, dst = os.path.join(base, "src"), os.path.join(base, "dst")
    os.makedirs(src)
    os.makedirs(dst)
    os.umask(0)
    fs = case.get("fs", "tmpfs")
    if libc.mount(b"none", src.encode(), fs.encode(), 0, None) != 0:
        raise RuntimeError(f"mount {fs}: {err()}")
    root = case.get("root") or {}
    os.chown(src, root.get("uid", 0), root.get("gid", 0))
    if "mode" in root:
        os.chmod(src, int(root["mode"], 8))
    names = []
    for f in case.get("files", []):
        p = os.path.join(src, f["name"])
        if f.get("type") == "dir":
            os.mkdir(p, 0o755)
        else:
            os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        os.chown(p, f.get("uid", 0), f.get("gid", 0))
        if "mode" in f:
            os.chmod(p, int(f["mode"], 8))
        names.append(f["name"])
    sub = case.get("submount")
    if sub:
        p = os.path.join(src, sub["name"])
        if not os.path.exists(p):
            os.mkdir(p, 0o755)
        opts = f"uid={sub.get('uid', 0)},gid={sub.get('gid', 0)}".encode()
        if libc.mount(b"none", p.encode(), b"tmpfs", 0, opts) != 0:
            raise RuntimeError(f"submount: {err()}")
        if sub["name"] not in names:
            names.append(sub["name"])
    cleanups = []
    try:
        kind = case.get("userns", "new")
        nsfd = None
        if kind == "new":
            owner = 1000 if case.get("userns_owner") == "unprivileged" else None
            nsfd, cleanup, failure = new_userns(case.get("uid_map"), case.get("gid_map"), case.get("setgroups"), owner)
            if failure:
                out.update(ok=False, step=failure[0], errno=failure[1])
                return out
            cleanups.append(cleanup)
        elif kind == "init":
            nsfd = os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        elif kind == "netns":
            nsfd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        elif kind == "file":
            nsfd = os.open(os.path.join(base, "plain"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        flags = OPEN_TREE_CLOEXEC
        if case.get("source") != "attached":
            flags |= OPEN_TREE_CLONE
        if case.get("recursive"):
            flags |= AT_RECURSIVE
        tree, e = sc(SYS_OPEN_TREE, ctypes.c_int(AT_FDCWD), src.encode(), ctypes.c_uint(flags))
        if e:
            out.update(ok=False, step="open_tree", errno=e)
            return out
        out["mount_setattr"] = None
        sflags = AT_EMPTY_PATH | (AT_RECURSIVE if case.get("setattr_recursive") else 0)
        if kind != "none":
            a = attr(MOUNT_ATTR_IDMAP, 0, nsfd)
            _, e = sc(SYS_MOUNT_SETATTR, ctypes.c_int(tree), b"", ctypes.c_uint(sflags), a, ctypes.c_size_t(32))
            out["mount_setattr"] = {"ok": e is None, "errno": e}
            if e:
                out.update(ok=False, step="mount_setattr", errno=e)
                return out
            if case.get("twice"):
                _, e = sc(SYS_MOUNT_SETATTR, ctypes.c_int(tree), b"", ctypes.c_uint(sflags), a, ctypes.c_size_t(32))
                out["mount_setattr_again"] = {"ok": e is None, "errno": e}
        dfd = tree
        if case.get("attach", True) is not False:
            _, e = sc(SYS_MOVE_MOUNT, ctypes.c_int(tree), b"", ctypes.c_int(AT_FDCWD), dst.encode(),
                      ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH))
            if e:
                out.update(ok=False, step="move_mount", errno=e)
                return out
            dfd = os.open(dst, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

        def stat_line(name, fd=None):
            fd = dfd if fd is None else fd
            try:
                disk = os.stat(os.path.join(src, name), follow_symlinks=False)
                du, dg = disk.st_uid, disk.st_gid
            except FileNotFoundError:  # hidden under a submount on the source
                du = dg = None
            try:
                seen = os.stat(fd) if name in ("", ".") else os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as e:
                return {"name": name or ".", "uid": None, "gid": None, "mode": None,
                        "disk_uid": du, "disk_gid": dg, "stat_errno": E.errorcode[e.errno]}
            return {"name": name or ".", "uid": seen.st_uid, "gid": seen.st_gid, "mode": octal(seen.st_mode),
                    "disk_uid": du, "disk_gid": dg}

        def op_line(name, e):
            if e:
                return {"name": name, "ok": False, "errno": e, "uid": None, "gid": None, "mode": None,
                        "disk_uid": None, "disk_gid": None}
            return {"ok": True, "errno": None, **stat_line(name)}

        out["root_stat"] = stat_line(".")
        out["stat"] = [stat_line(n) for n in names]
        creates = []
        for c in case.get("creates", []):
            mode = int(c["mode"], 8) if "mode" in c else (0o755 if c.get("type") == "dir" else 0o644)
            if c.get("type") == "dir":
                fn = lambda c=c, mode=mode: os.mkdir(c["name"], mode, dir_fd=dfd)  # noqa: E731
            else:
                fn = lambda c=c, mode=mode: os.close(os.open(  # noqa: E731
                    c["name"], os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY, mode, dir_fd=dfd))
            creates.append(op_line(c["name"], as_child(c.get("as"), fn)))
        out["creates"] = creates
        chowns = []
        for c in case.get("chowns", []):
            fn = lambda c=c: os.chown(c["name"], c.get("uid", -1), c.get("gid", -1), dir_fd=dfd,  # noqa: E731
                                      follow_symlinks=False)
            chowns.append(op_line(c["name"], as_child(c.get("as"), fn)))
        out["chowns"] = chowns
        re = case.get("reidmap")
        if re:
            ns2, cleanup, failure = new_userns(re.get("uid_map"), re.get("gid_map"), None, None)
            if failure:
                out["reidmap"] = {"ok": False, "errno": failure[1], "stat": None}
            else:
                cleanups.append(cleanup)
                a = attr(MOUNT_ATTR_IDMAP, MOUNT_ATTR_IDMAP, ns2)
                fd2, e = sc(SYS_OPEN_TREE_ATTR, ctypes.c_int(dfd), b"",
                            ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH), a, ctypes.c_size_t(32))
                out["reidmap"] = {"ok": e is None, "errno": e,
                                  "stat": None if e else [stat_line(n, fd2) for n in case_files(case)]}
        out.update(ok=True, step=None, errno=None)
        return out
    finally:
        for c in reversed(cleanups):
            c()


def case_files(case):
    return [f["name"] for f in case.get("files", [])]


def main():
    base = sys.argv[1]
    for i, line in enumerate(sys.stdin):
        if not line.strip():
            continue
        case = json.loads(line)
        print(json.dumps(run(case, os.path.join(base, str(i)))), flush=True)


main()
