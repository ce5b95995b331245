/**
 * crossCheck against real namespaces made outside the library (util-linux
 * unshare and setpriv, maps written from here), so the check does not lean on
 * the code it checks: one level with multi-extent maps, and two levels where
 * the three vantage points really see different lower ids.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { afterEach, expect, it } from "vitest";
import { crossCheck } from "../../lib/crosscheck/index.js";
import { native } from "../../lib/kernel/native.js";
import { describeKernel } from "../helpers/kernel.js";

const rb = (...exts: [number, number, number][]) =>
  exts.map((e) => `${e.map((n) => String(n).padStart(10)).join(" ")}\n`).join("");
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

async function nsChanged(pid: number, from: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (readlinkSync(`/proc/${pid}/ns/user`) !== from) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`process ${pid} never left ${from}`);
}

/** A process in a fresh user namespace whose maps this process writes. */
async function oneLevel(uidMap: string, gidMap: string, deny: boolean): Promise<number> {
  const self = readlinkSync("/proc/self/ns/user");
  const c = spawn("unshare", ["-U", "sleep", "30"], { stdio: "ignore" });
  children.push(c);
  await nsChanged(c.pid!, self);
  writeFileSync(`/proc/${c.pid}/uid_map`, uidMap);
  if (deny) writeFileSync(`/proc/${c.pid}/setgroups`, "deny");
  writeFileSync(`/proc/${c.pid}/gid_map`, gidMap);
  return c.pid!;
}

const U = "0 100000 65536\n";
const G = "0 200000 1000\n1000 300000 10\n";

describeKernel("crossCheck", () => {
  it("agrees from every vantage point when the model is told what was written", async () => {
    const pid = await oneLevel(U, G, true);
    const r = await crossCheck({ pid, mapping: { uidMap: U, gidMap: G, setgroups: "deny" } });
    expect(r.discrepancies).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.reachesSelf).toBe(true);
    expect(r.chain).toHaveLength(2);
    expect(r.observations).toHaveLength(9);
    expect(r.observations.find((o) => o.vantage === "inside" && o.file === "gid_map")?.kernel).toBe(
      rb([0, 200000, 1000], [1000, 300000, 10]),
    );
  });

  it("lists each discrepancy with both values and the vantage point", async () => {
    const pid = await oneLevel(U, G, false);
    const r = await crossCheck({ pid, mapping: { uidMap: "0 100000 65535\n", gidMap: G, setgroups: "deny" } });
    expect(r.ok).toBe(false);
    expect(r.discrepancies).toEqual(
      expect.arrayContaining([
        { vantage: "self", file: "uid_map", kernel: rb([0, 100000, 65536]), model: rb([0, 100000, 65535]) },
        { vantage: "inside", file: "uid_map", kernel: rb([0, 100000, 65536]), model: rb([0, 100000, 65535]) },
        { vantage: "parent", file: "setgroups", kernel: "allow\n", model: "deny\n" },
      ]),
    );
    expect(r.discrepancies.filter((d) => d.file === "gid_map")).toEqual([]);
  });

  it("sees a two-level namespace differently from init, the parent and inside, as predicted", async () => {
    // A: maps written from here. nsenter joins A as its root (kuid 100000) and
    // runs unshare, which creates B and writes `0 0 1` from inside.
    const a = await oneLevel(U, U, false);
    const aNs = readlinkSync(`/proc/${a}/ns/user`);
    const c = spawn(
      "nsenter",
      [`--user=/proc/${a}/ns/user`, "--setuid=0", "--setgid=0", "unshare", "-U", "--map-root-user", "sleep", "30"],
      { stdio: "ignore" },
    );
    children.push(c);
    await nsChanged(c.pid!, readlinkSync("/proc/self/ns/user"));
    await nsChanged(c.pid!, aNs);
    // unshare writes the map right after creating B: wait for it.
    for (let i = 0; i < 300 && readFileSync(`/proc/${c.pid}/gid_map`, "utf8") === ""; i++)
      await new Promise((r) => setTimeout(r, 10));
    const r = await crossCheck({ pid: c.pid!, mapping: { uidMap: "0 0 1\n", gidMap: "0 0 1\n", setgroups: "deny" } });
    expect(r.discrepancies).toEqual([]);
    expect(r.chain).toHaveLength(3);
    const seen = (v: string) => r.observations.find((o) => o.vantage === v && o.file === "uid_map")?.kernel;
    expect([seen("self"), seen("parent"), seen("inside")]).toEqual([rb([0, 100000, 1]), rb([0, 0, 1]), rb([0, 0, 1])]);
  });

  it("checks a namespace held only by an fd, with no process left in it", async () => {
    const pid = await oneLevel(U, G, false);
    const fd = native().openNs(`/proc/${pid}/ns/user`);
    try {
      const c = children.pop()!;
      c.kill("SIGKILL");
      await new Promise((r) => c.once("exit", r));
      const r = await crossCheck({ fd, mapping: { uidMap: U, gidMap: G } });
      expect(r.pid).toBeUndefined();
      expect(r.discrepancies).toEqual([]);
    } finally {
      native().close(fd);
    }
  });

  it("checks a bare pid for consistency with what its parent reports", async () => {
    const pid = await oneLevel(U, G, true);
    const r = await crossCheck(pid);
    expect(r.ok).toBe(true);
  });
});
