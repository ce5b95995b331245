/**
 * `userns ls`, `ids`, `alloc` and `release` on the real kernel, in-process
 * (test/helpers/cli.ts), with --json and as tables.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { registerAllocCommands } from "../../lib/cli/alloc.js";
import { registerIdsCommand } from "../../lib/cli/ids.js";
import { registerLsCommand } from "../../lib/cli/ls.js";
import { UserNamespace } from "../../lib/namespaces/user-namespace.js";
import { runCommands } from "../helpers/cli.js";
import { describeKernel } from "../helpers/kernel.js";

let dir = "";
let ns: UserNamespace;

describeKernel("inventory commands", () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "userns-invcli-"));
    ns = UserNamespace.createSync({ uidMap: "0 260000 100", gidMap: "0 260000 100", cache: false });
  });
  afterAll(() => {
    ns.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("ls --json names the discovery method and lists our namespace with both views; --tree draws it under the initial one", async () => {
    const r = await runCommands(registerLsCommand, ["ls", "--json", "--check"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as {
      discovery: { method: string };
      namespaces: { ino: string; uidMap: string[]; parentView: { uidMap: string[] } | null; mapsReadVia: string }[];
      checks: { ino: string; result: string }[];
    };
    expect(["proc", "listns"]).toContain(j.discovery.method);
    const e = j.namespaces.find((n) => n.ino === String(ns.identity.ino))!;
    expect(e.uidMap).toEqual(["0 260000 100"]);
    expect(e.parentView?.uidMap).toEqual(["0 260000 100"]);
    expect(j.checks.find((c) => c.ino === String(ns.identity.ino))?.result).toBe("agree");
    expect(j.checks.some((c) => c.result === "disagree")).toBe(false);
    const t = await runCommands(registerLsCommand, ["ls", "--tree"]);
    expect(t.out).toMatch(new RegExp(`[├└]─user:\\[${ns.identity.ino}\\]`));
    expect(t.out).toMatch(/found by (\/proc walk \(listns\(2\): ENOSYS\)|listns\(2\))/);
  });

  it("alloc prints a lease id, ids shows it with the namespace's claim, release gives it back", async () => {
    const a = await runCommands(registerAllocCommands, ["alloc", "--dir", dir, "--purpose", "cli test", "--json"]);
    expect(a.code).toBe(0);
    const lease = (JSON.parse(a.out) as { lease: { id: string; uid: { start: number } } }).lease;
    expect(lease.id).toMatch(/^[0-9a-f]{16}$/);
    const ids = await runCommands(registerIdsCommand, ["ids", "--dir", dir, "--json"]);
    const claims = (JSON.parse(ids.out) as { claims: { source: string; claimant: string; start: number }[] }).claims;
    expect(claims).toContainEqual(
      expect.objectContaining({ source: "lease", claimant: lease.id, start: lease.uid.start }),
    );
    expect(claims).toContainEqual(
      expect.objectContaining({ source: "namespace", claimant: `user:[${ns.identity.ino}]`, start: 260000 }),
    );
    const table = await runCommands(registerIdsCommand, ["ids", "--dir", dir]);
    expect(table.out).toContain("KIND");
    expect(table.out).toContain(lease.id);
    const rel = await runCommands(registerAllocCommands, ["release", lease.id, "--dir", dir]);
    expect(rel.out).toContain(`released ${lease.id}`);
    const again = await runCommands(registerAllocCommands, ["release", lease.id, "--dir", dir]);
    // A UsernsError (ENOENT) thrown out of the command: main() prints it and exits 1.
    expect(again.code).not.toBe(0);
  });
});
