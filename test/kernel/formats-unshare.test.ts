/**
 * Direction check against the real tools: util-linux's unshare (2.38 here)
 * turns `--map-users=outer,inner,count` into a uid_map through newuidmap; the
 * kernel's read-back must equal what our unshare-legacy parser says the text
 * means. /etc/subuid is replaced by a bind mount inside a private mount
 * namespace created for the test, so the host's files stay untouched.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { getFormat, parseKernelMap } from "../../lib/formats/index.js";
import { describeKernel } from "../helpers/kernel.js";

function inPrivateMountNs(script: string): { code: number | null; out: string; err: string } {
  const dir = mkdtempSync(join(tmpdir(), "userns-fmt-"));
  try {
    writeFileSync(join(dir, "subuid"), "root:100000:65536\n");
    writeFileSync(join(dir, "subgid"), "root:200000:65536\n");
    return runIn(dir, script);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runIn(dir: string, script: string): { code: number | null; out: string; err: string } {
  const r = spawnSync(
    "unshare",
    [
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      `mount --bind ${dir}/subuid /etc/subuid && mount --bind ${dir}/subgid /etc/subgid && ${script}`,
    ],
    { encoding: "utf8", timeout: 20_000 },
  );
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function unshareVersion(): [number, number] | undefined {
  const m = /util-linux (\d+)\.(\d+)/.exec(spawnSync("unshare", ["--version"], { encoding: "utf8" }).stdout ?? "");
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

describeKernel("formats: map direction as util-linux and the kernel see it", () => {
  const v = unshareVersion();
  const legacy = v !== undefined && (v[0] > 2 || v[1] >= 38) && v[0] === 2 && v[1] < 39;
  const modern = v !== undefined && (v[0] > 2 || v[1] >= 39);

  it("unshare is installed (util-linux ≥ 2.38 has --map-users)", () => {
    expect(v).toBeDefined();
    expect(legacy || modern).toBe(true);
  });

  it("the --map-users/--map-groups text means what the kernel installs", () => {
    const text = legacy
      ? "--map-users=100000,0,65536 --map-groups=200000,0,65536"
      : "--map-users=0:100000:65536 --map-groups=0:200000:65536";
    const r = inPrivateMountNs(
      `unshare --user ${text} cat /proc/self/uid_map; echo ---; unshare --user ${text} cat /proc/self/gid_map`,
    );
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const [uidText, gidText] = r.out.split("---\n") as [string, string];
    const ours = getFormat(legacy ? "unshare-legacy" : "unshare").parse(text);
    expect(parseKernelMap(uidText).toJSON()).toEqual(ours.uid!.toJSON());
    expect(parseKernelMap(gidText).toJSON()).toEqual(ours.gid!.toJSON());
    expect(ours.uid!.toJSON()).toEqual([{ first: 0, lowerFirst: 100000, count: 65536 }]);
  });

  it("before 2.39 the inner:outer:count form is refused, after it the outer,inner,count form is deprecated", () => {
    const r = inPrivateMountNs("unshare --user --map-users=0:100000:65536 true");
    if (legacy) {
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(/could not parse/);
    } else {
      expect(r.code).toBe(0);
    }
  });
});
