/**
 * A real tool, unchanged: @anthropic-ai/sandbox-runtime (`srt`) builds a bwrap command line and spawns it; its
 * settings' `bwrapPath` points it at bin/userns-bwrap.js. Its Linux sandbox runs end to end as the unprivileged CI
 * user: a write outside the allowed directory fails, the network namespace is a new one with only `lo`, and no
 * capability is left. No network is used (srt's proxies listen on localhost; nothing is allowed out).
 * srt needs `socat` and `rg` (CI installs them in the bubblewrap block of .ci/run).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeKernel } from "../helpers/kernel.js";

const root = join(import.meta.dirname, "..", "..");
const front = join(root, "bin", "userns-bwrap.js");
const srt = join(root, "node_modules", "@anthropic-ai", "sandbox-runtime", "dist", "cli.js");
const user = process.env.USERNS_TEST_USER ?? "usernstest";
let work = "";

beforeAll(() => {
  // The bin runs from dist/ (npm ci's prepare builds it). Built here only when absent: rewriting dist/ while
  // another run of the bin is loading it (bubblewrap's suite in CI) would break that run.
  if (!existsSync(join(root, "dist", "formats", "bwrap.js")))
    execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
  work = mkdtempSync(join(tmpdir(), "bwrap-tool-"));
  for (const d of ["allowed", "other", "home"]) execFileSync("mkdir", [join(work, d)]);
  execFileSync("chmod", ["-R", "0777", work]);
  writeFileSync(
    join(work, "settings.json"),
    JSON.stringify({
      bwrapPath: front,
      network: { allowedDomains: [], deniedDomains: [] },
      filesystem: { denyRead: [], allowWrite: [join(work, "allowed")], denyWrite: [] },
    }),
  );
  chmodSync(join(work, "settings.json"), 0o644);
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describeKernel("sandbox-runtime (srt) driving userns-bwrap", () => {
  it("writes outside the allowed paths fail, the network is unshared, capabilities are dropped", () => {
    expect(existsSync(srt)).toBe(true);
    const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }));
    const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }));
    const script = [
      `echo in > ${join(work, "allowed", "f")} && echo allowed-write-ok`,
      `echo out > ${join(work, "other", "f")} 2>/dev/null || echo other-write-refused`,
      "echo netns $(readlink /proc/self/ns/net)",
      "echo ifaces $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ')",
      "grep -E '^Cap(Prm|Eff|Amb)' /proc/self/status",
      "echo front $(tr '\\0' ' ' < /proc/1/cmdline)",
    ].join("; ");
    const r = spawnSync(process.execPath, [srt, "--settings", join(work, "settings.json"), "-c", script], {
      cwd: join(work, "allowed"),
      env: { PATH: "/usr/bin:/bin:/usr/sbin:/sbin", HOME: join(work, "home"), TMPDIR: work, LANG: "C" },
      uid,
      gid,
      encoding: "utf8",
      timeout: 90_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = r.stdout;
    expect(out).toContain("allowed-write-ok");
    expect(out).toContain("other-write-refused");
    expect(existsSync(join(work, "other", "f"))).toBe(false);
    expect(existsSync(join(work, "allowed", "f"))).toBe(true);
    const netns = /netns (\S+)/.exec(out)?.[1];
    expect(netns).toMatch(/^net:\[\d+\]$/);
    expect(netns).not.toBe(readlinkSync("/proc/self/ns/net"));
    expect(/ifaces (.*)/.exec(out)?.[1]?.trim()).toBe("lo");
    expect(out).toMatch(/CapPrm:\s+0+\n/);
    expect(out).toMatch(/CapEff:\s+0+\n/);
    expect(out).toMatch(/CapAmb:\s+0+\n/);
    // The sandbox's pid 1 is the library's reaper (userns-init, or a copy of the front end's process in a build
    // without the init binary), never bwrap: srt really ran userns-bwrap.
    expect(out).toMatch(new RegExp(`front (userns-init|node ${front})`));
  }, 120_000);
});
