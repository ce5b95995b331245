#!/usr/bin/env python3
"""A small real-kernel runner for map-write cases (case-formats.md §1).

Reads case JSON lines on stdin, builds the namespaces with real processes
(fork + unshare(CLONE_NEWUSER) via libc), performs the writes, and prints one
result JSON line per case. Every process is an "actor": a forked copy of this
single-threaded script that executes commands received over a SOCK_SEQPACKET
socket, so credentials and namespaces are real and fds can be passed between
actors (opener != writer). Test helper only: it runs as root and kills only
the processes it forked.
"""
import ctypes
import errno
import json
import os
import signal
import socket
import sys

CLONE_NEWUSER = 0x10000000
PR_SET_DUMPABLE = 4
CAPS = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
]
libc = ctypes.CDLL(None, use_errno=True)


class CapHdr(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def check(rc):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def drop_caps(names, everything=False):
    hdr = CapHdr(0x20080522, 0)
    data = (CapData * 2)()
    check(libc.capget(ctypes.byref(hdr), data))
    for name in names:
        bit = CAPS.index(name[4:] if name.startswith("CAP_") else name)
        data[bit // 32].effective &= ~(1 << (bit % 32))
        data[bit // 32].permitted &= ~(1 << (bit % 32))
        data[bit // 32].inheritable &= ~(1 << (bit % 32))
    if everything:
        for d in data:
            d.effective = d.permitted = d.inheritable = 0
    check(libc.capset(ctypes.byref(hdr), data))


# ------------------------------------------------------------------ actor side

def actor_loop(sock):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # auto-reap sub-actors
    files = {}
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 4)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)
        cmd = json.loads(msg)
        reply_fds = []
        try:
            op = cmd["op"]
            out = {}
            if op == "fork":
                pid = os.fork()
                if pid == 0:
                    sock.close()
                    actor_loop(socket.socket(fileno=fds[0]))
                os.close(fds[0])
                out["pid"] = pid
            elif op == "pid":
                out["pid"] = os.getpid()
            elif op == "unshare":
                check(libc.unshare(CLONE_NEWUSER))
            elif op == "become_root":
                # uid 0 / gid 0 of the current namespace where it maps them; stay dumpable.
                for fn in (os.setresgid, os.setresuid):
                    try:
                        fn(0, 0, 0)
                    except OSError:
                        pass
                check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
            elif op == "unprivileged":
                try:
                    os.setgroups([])
                except OSError:
                    pass  # EPERM under setgroups "deny": nothing to drop
                os.setresgid(cmd["gid"], cmd["gid"], cmd["gid"])
                os.setresuid(cmd["uid"], cmd["uid"], cmd["uid"])
                drop_caps([], everything=True)
                check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
            elif op == "drop_caps":
                drop_caps(cmd["caps"])
            elif op == "open":
                files[cmd["name"]] = os.open(cmd["path"], os.O_WRONLY | os.O_CLOEXEC)
            elif op == "write":
                out["written"] = os.write(files[cmd["name"]], bytes.fromhex(cmd["hex"]))
            elif op == "pwrite":
                out["written"] = os.pwrite(files[cmd["name"]], bytes.fromhex(cmd["hex"]), 0)
            elif op == "close":
                os.close(files.pop(cmd["name"]))
            elif op == "read":
                with open(cmd["path"], "rb") as f:
                    out["text"] = f.read().decode("latin-1")
            elif op == "getfd":
                reply_fds = [files[cmd["name"]]]
            elif op == "putfd":
                files[cmd["name"]] = fds[0]
            else:
                raise ValueError(op)
            out["ok"] = True
        except OSError as e:
            out = {"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno))}
        socket.send_fds(sock, [json.dumps(out).encode()], reply_fds)


OPEN_SOCKETS = []


class Actor:
    def __init__(self, sock, pid):
        self.sock = sock
        self.pid = pid
        OPEN_SOCKETS.append(sock)

    def do(self, op, fds=(), **kw):
        socket.send_fds(self.sock, [json.dumps(dict(op=op, **kw)).encode()], list(fds))
        msg, rfds, _, _ = socket.recv_fds(self.sock, 1 << 16, 4)
        r = json.loads(msg)
        r["fds"] = rfds
        return r

    def fork(self):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        r = self.do("fork", fds=[b.fileno()])
        b.close()
        return Actor(a, r["pid"])


def spawn_root_actor():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        a.close()
        os.setpgid(0, 0)  # one process group per case: killed as a whole afterwards
        actor_loop(b)
    b.close()
    return Actor(a, pid)


# -------------------------------------------------------------- coordinator

class Setup(Exception):
    pass


def b(text):
    return text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text


def lines_of(c, field):
    if c.get(field + "_hex") is not None:
        return bytes.fromhex(c[field + "_hex"])
    v = c.get(field)
    return None if v is None else b(v)


def role_of(spec):
    return {"role": spec} if isinstance(spec, str) else dict(spec)


def must(r, what):
    if not r["ok"]:
        raise Setup(f"{what}: {r['errno']}")
    return r


def make_actor(base, spec):
    """An actor forked from `base` (the acting root of the writer's namespace) with the role's credentials."""
    a = base.fork()
    if spec["role"] == "unprivileged":
        must(a.do("unprivileged", uid=spec.get("uid", 1000), gid=spec.get("gid", 1000)), "setresuid/setresgid")
    elif spec.get("drop_caps"):
        must(a.do("drop_caps", caps=spec["drop_caps"]), "drop caps")
    return a


def wres(r):
    if r["ok"]:
        return {"ok": True, "errno": None, "written": r["written"]}
    return {"ok": False, "errno": r["errno"], "written": -1}


def run_case(c, root):
    kind = c.get("kind") or "uid"
    parents = c.get("parent")
    if parents is None:
        parents = []
    elif not isinstance(parents, list):
        parents = [parents]
    data = lines_of(c, "lines")
    res = {"id": c.get("id"), "ok": None, "errno": None, "written": None, "stage": "setup", "len": len(data)}

    # The chain of intermediate namespaces: each created and written by the acting root of its parent.
    acting = root
    for i, p in enumerate(parents):
        if isinstance(p, str):
            p = {"uid_map": p, "gid_map": p, "projid_map": p}
        q = acting.fork()
        must(q.do("unshare"), f"creating parent {i + 1}")
        if p.get("setgroups") is not None:
            must(acting.do("open", name="sg", path=f"/proc/{q.pid}/setgroups"), "open parent setgroups")
            must(acting.do("write", name="sg", hex=b(p["setgroups"]).hex()), f"parent {i + 1} setgroups")
            acting.do("close", name="sg")
        maps = [("uid", p.get("uid_map")), ("gid", p.get("gid_map"))]
        if kind == "projid":
            maps.append(("projid", p.get("projid_map", p.get("uid_map"))))
        for k, text in maps:
            if text is None:
                continue
            must(acting.do("open", name="m", path=f"/proc/{q.pid}/{k}_map"), f"open parent {k}_map")
            must(acting.do("write", name="m", hex=b(text).hex()), f"writing parent {i + 1}'s {k}_map")
            acting.do("close", name="m")
        must(q.do("become_root"), "become root")
        acting = q

    writer_spec = role_of(c.get("writer") or "privileged")
    creator_spec = role_of(c["creator"]) if c.get("creator") else (
        {"role": "privileged"} if writer_spec["role"] == "inside" else writer_spec)
    opener_spec = role_of(c["opener"]) if c.get("opener") else None

    child = make_actor(acting, creator_spec)
    must(child.do("unshare"), "unshare(CLONE_NEWUSER) by the creator")

    def actor_for(spec):
        if spec["role"] == "inside":
            if spec.get("drop_caps"):
                must(child.do("drop_caps", caps=spec["drop_caps"]), "drop caps inside")
            return child
        return make_actor(acting, spec)

    writer = actor_for(writer_spec)
    opener = writer if opener_spec is None or opener_spec == writer_spec else actor_for(opener_spec)
    mpath = f"/proc/{child.pid}/{kind}_map"

    def setgroups_step(text):
        r = writer.do("open", name="sg", path=f"/proc/{child.pid}/setgroups")
        if not r["ok"]:
            return {"ok": False, "errno": r["errno"], "written": -1, "stage": "open"}
        out = wres(writer.do("write", name="sg", hex=text.hex()))
        writer.do("close", name="sg")
        return out

    def open_map(name):
        r = opener.do("open", name=name, path=mpath)
        if r["ok"] and opener is not writer:
            fd = opener.do("getfd", name=name)["fds"][0]
            writer.do("putfd", fds=[fd], name=name)
            os.close(fd)
        return r

    extra = {}
    sg = lines_of(c, "setgroups")
    if sg is not None:
        extra["setgroups"] = setgroups_step(sg)

    r = open_map("map")
    opened = r["ok"]
    if not opened:
        res.update(ok=False, errno=r["errno"], written=-1, stage="open")
    else:
        w = writer.do("write", name="map", hex=data.hex())
        res.update(wres(w), stage="write")

    second = lines_of(c, "second")
    if second is not None:
        how = c.get("second_fd") or "same"
        if how == "reopen":
            r2 = open_map("map2")
            extra["second"] = wres(writer.do("write", name="map2", hex=second.hex())) if r2["ok"] else {
                "ok": False, "errno": r2["errno"], "written": -1, "stage": "open"}
        elif not opened:
            extra["second"] = {"ok": False, "errno": res["errno"], "written": -1, "stage": "open"}
        else:
            extra["second"] = wres(writer.do("pwrite" if how == "pwrite0" else "write", name="map", hex=second.hex()))
    after = lines_of(c, "setgroups_after")
    if after is not None:
        extra["setgroups_after"] = setgroups_step(after)

    reader = acting.fork()
    res["readback_from_parent"] = reader.do("read", path=mpath)["text"]
    with open(mpath, "rb") as f:
        res["readback_from_init"] = f.read().decode("latin-1")
    res["readback_from_inside"] = child.do("read", path=f"/proc/self/{kind}_map")["text"]
    res["setgroups_readback"] = reader.do("read", path=f"/proc/{child.pid}/setgroups")["text"]
    res.update(extra)
    return res


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        c = json.loads(line)
        root = spawn_root_actor()
        try:
            res = run_case(c, root)
        except Setup as e:
            res = {"id": c.get("id"), "ok": None, "errno": None, "written": None, "stage": "setup",
                   "len": len(lines_of(c, "lines")), "readback_from_parent": None, "readback_from_init": None,
                   "readback_from_inside": None, "setgroups_readback": None, "setup_error": str(e)}
        finally:
            # Every actor of the case is in the root actor's process group: kill exactly that group.
            while OPEN_SOCKETS:
                OPEN_SOCKETS.pop().close()
            try:
                os.killpg(root.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(root.pid, 0)
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
