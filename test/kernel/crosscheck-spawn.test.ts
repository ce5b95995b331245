/**
 * crossCheck on what the library itself made: spawned children (one and two
 * levels deep) and a held namespace, each compared with the lines spawn wrote.
 */
import { afterEach, expect, it } from "vitest";
import { crossCheck } from "../../lib/crosscheck/index.js";
import { UserNamespace } from "../../lib/namespaces/user-namespace.js";
import { spawn, type UsernsChildProcess } from "../../lib/spawn/index.js";
import { describeKernel } from "../helpers/kernel.js";

const rb = (...exts: [number, number, number][]) =>
  exts.map((e) => `${e.map((n) => String(n).padStart(10)).join(" ")}\n`).join("");
const live: UsernsChildProcess[] = [];
afterEach(() => {
  for (const c of live.splice(0)) c.kill("SIGKILL");
});

describeKernel("crossCheck on spawned children and held namespaces", () => {
  it("a spawned child agrees from init, the parent and inside with what spawn wrote", async () => {
    const child = spawn("sleep", ["10"], {
      namespaces: ["user"],
      uidMap: "0 100000 65536\n",
      gidMap: "0 200000 1000\n1000 300000 10\n",
      setgroups: "deny",
      stdio: "ignore",
    });
    live.push(child);
    await new Promise<void>((r) => child.once("spawn", r));
    const report = await crossCheck(child);
    expect(report.discrepancies).toEqual([]);
    expect(report.chain).toHaveLength(2);
    expect(report.observations.find((o) => o.vantage === "inside" && o.file === "gid_map")?.kernel).toBe(
      rb([0, 200000, 1000], [1000, 300000, 10]),
    );
  });

  it("a child nested in a held namespace is seen through the parent's map from init", async () => {
    const ns = await UserNamespace.create({ uidMap: "0 100000 65536\n", gidMap: "0 100000 65536\n", cache: false });
    try {
      const held = await crossCheck(ns);
      expect(held.discrepancies).toEqual([]);
      const child = spawn("sleep", ["10"], {
        namespaces: ["user"],
        join: ns,
        uidMap: "0 1000 10\n",
        gidMap: "0 1000 10\n",
        stdio: "ignore",
      });
      live.push(child);
      await new Promise<void>((r) => child.once("spawn", r));
      const report = await crossCheck(child);
      expect(report.discrepancies).toEqual([]);
      expect(report.chain).toHaveLength(3);
      const seen = (v: string) => report.observations.find((o) => o.vantage === v && o.file === "uid_map")?.kernel;
      expect([seen("self"), seen("parent"), seen("inside")]).toEqual([
        rb([0, 101000, 10]),
        rb([0, 1000, 10]),
        rb([0, 1000, 10]),
      ]);
    } finally {
      ns.close();
    }
  });
});
