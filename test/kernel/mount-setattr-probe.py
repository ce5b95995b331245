"""Probes mount_setattr(2) argument and target checks (spec §8.2) for
test/kernel/model-mountsetattr.test.ts. Run as root inside
`unshare --mount --propagation private`; mounts live only there.
Reads JSON probes on stdin, prints {"id", "errno"} per probe (errno null on success).
"""
import ctypes
import errno as E
import json
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_OPEN_TREE, SYS_MOUNT_SETATTR = 428, 442
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
AT_FDCWD, AT_EMPTY_PATH = -100, 0x1000
MOUNT_ATTR_IDMAP = 0x100000
CLONE_NEWUSER = 0x10000000


def holder(write_maps):
    r, w = os.pipe()
    hr, hw = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.close(hw)
        libc.unshare(CLONE_NEWUSER)
        os.write(w, b"1")
        os.read(hr, 1)
        os._exit(0)
    os.close(w)
    os.close(hr)
    os.read(r, 1)
    os.close(r)
    if write_maps:
        for f in ("uid_map", "gid_map"):
            fd = os.open(f"/proc/{pid}/{f}", os.O_WRONLY)
            os.write(fd, b"0 100000 65536")
            os.close(fd)
    nsfd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    os.close(hw)
    os.waitpid(pid, 0)
    return nsfd


def main():
    base = sys.argv[1]
    os.umask(0)
    src = os.path.join(base, "src")
    os.makedirs(os.path.join(src, "sub"), exist_ok=True)
    libc.mount(b"none", src.encode(), b"tmpfs", 0, None)
    os.mkdir(os.path.join(src, "sub"))
    ramfs = os.path.join(base, "ramfs")
    os.makedirs(ramfs)
    libc.mount(b"none", ramfs.encode(), b"ramfs", 0, None)
    plain = os.open(os.path.join(base, "plain"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    good = holder(True)
    nomap = holder(False)
    fds = {"new": good, "new-nomap": nomap, "file": plain,
           "init": os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC),
           "mntns": os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC),
           "closed": 999, "intmax": 1 << 31}
    for line in sys.stdin:
        if not line.strip():
            continue
        p = json.loads(line)
        target = p.get("target", "clone")
        tree_src = ramfs if target == "ramfs" else src
        otflags = OPEN_TREE_CLOEXEC | (0 if target == "attached" else OPEN_TREE_CLONE)
        tree = libc.syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD), tree_src.encode(), ctypes.c_uint(otflags))
        if tree < 0:
            raise RuntimeError("open_tree failed")
        a = struct.pack("QQQQ", p.get("attr_set", MOUNT_ATTR_IDMAP), p.get("attr_clr", 0), p.get("propagation", 0),
                        fds[p.get("userns", "new")])
        size = p.get("size", 32)
        buf = ctypes.create_string_buffer(a + (b"\x01" if p.get("tail") else b"\x00") * max(0, size - 32), max(size, 32))
        path = {"subdir": b"sub", "missing": b"missing"}.get(target, b"")
        flags = p.get("flags", AT_EMPTY_PATH if path == b"" else 0)
        if target == "idmapped":
            libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(tree), b"", ctypes.c_uint(AT_EMPTY_PATH),
                         ctypes.create_string_buffer(struct.pack("QQQQ", MOUNT_ATTR_IDMAP, 0, 0, good), 32), ctypes.c_size_t(32))
        r = libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(tree), path, ctypes.c_uint(flags), buf,
                         ctypes.c_size_t(size))
        e = None if r >= 0 else E.errorcode.get(ctypes.get_errno())
        os.close(tree)
        print(json.dumps({"id": p["id"], "errno": e}), flush=True)


main()
