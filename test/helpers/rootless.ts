/**
 * Running things as the unprivileged test user. As root, a scenario runs in
 * a Node process started with the test user's uid and gid (scripts/ci-user.sh
 * creates `usernstest` with subuid/subgid 300000:65536). As an unprivileged
 * user with subordinate ranges (the suite run by that user, as CI's second
 * pass does), it runs as that user directly. Either way the rootless tests
 * run; they are skipped only for a user who is neither.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { describe } from "vitest";

const user = process.env.USERNS_TEST_USER ?? "usernstest";

/** This user's ranges in /etc/subuid and /etc/subgid exist (by name or uid, as shadow matches them). */
function hasSubids(): boolean {
  const me = userInfo();
  const has = (file: string): boolean => {
    try {
      return readFileSync(file, "utf8")
        .split("\n")
        .some((l) => l.startsWith(`${me.username}:`) || l.startsWith(`${me.uid}:`));
    } catch {
      return false;
    }
  };
  return has("/etc/subuid") && has("/etc/subgid");
}

/** Why rootless tests cannot run here, or undefined. */
export function rootlessSkipReason(): string | undefined {
  if (process.platform !== "linux") return `needs Linux (this is ${process.platform})`;
  if (process.getuid?.() === 0) return undefined;
  if (!hasSubids()) return "needs root (to act as the test user) or ranges of your own in /etc/subuid and /etc/subgid";
  return undefined;
}

/** A describe block of rootless real-kernel tests: run as root (switching to the test user) or as a user with subids. */
export function describeRootless(name: string, fn: () => void): void {
  const reason = rootlessSkipReason();
  if (reason === undefined) describe(`[rootless] ${name}`, fn);
  else describe.skip(`[rootless] ${name} (skipped: ${reason})`, fn);
}

/** The uid and gid scenarios run as: the test user's when we are root, else our own. */
export function testUserIds(): { uid: number; gid: number; switched: boolean } {
  if (process.getuid?.() !== 0) return { uid: process.getuid!(), gid: process.getgid!(), switched: false };
  try {
    return {
      uid: Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim()),
      gid: Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim()),
      switched: true,
    };
  } catch {
    throw new Error(`the CI user ${user} does not exist: run bash scripts/ci-user.sh`);
  }
}

/** Runs `node script args` as the test user (see the file comment); returns the last stdout line parsed as JSON. */
export function runAsTestUser<T>(
  script: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeout = 120_000,
): T {
  const ids = testUserIds();
  const r = spawnSync(process.execPath, [script, ...args], {
    ...(ids.switched ? { uid: ids.uid, gid: ids.gid } : {}),
    cwd: "/",
    env: { ...process.env, ...env, ...(ids.switched ? { HOME: "/" } : {}) },
    encoding: "utf8",
    timeout,
  });
  if (r.status !== 0) throw new Error(`${script} ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr}`);
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!) as T;
}
