/**
 * userns-bwrap's --block-fd and --info-fd, as bwrap: the sandbox is built, its pid and namespace ids are written to
 * the info fd, and only then does it wait on the block fd, just before exec (not before the sandbox exists).
 */
import { spawn } from "node:child_process";
import { existsSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { expect, it } from "vitest";
import { describeKernel } from "../helpers/kernel.js";

const root = join(import.meta.dirname, "..", "..");
const front = join(root, "bin", "userns-bwrap.js");

function readAll(s: Readable): Promise<string> {
  let out = "";
  s.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((res) => s.once("close", () => res(out)));
}

describeKernel("userns-bwrap --block-fd", () => {
  it("holds the built sandbox after --info-fd is written, until a byte arrives", async () => {
    expect(existsSync(join(root, "dist", "formats", "bwrap.js"))).toBe(true);
    const p = spawn(
      front,
      [
        "--bind",
        "/",
        "/",
        "--unshare-net",
        "--unshare-pid",
        "--block-fd",
        "3",
        "--info-fd",
        "4",
        "--",
        "sh",
        "-c",
        "echo ran; readlink /proc/self/ns/net",
      ],
      { stdio: ["ignore", "pipe", "inherit", "pipe", "pipe"] },
    );
    let stdout = "";
    p.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    const info = JSON.parse(await readAll(p.stdio[4] as Readable)) as Record<string, number>;
    const pid = info["child-pid"]!;
    // The sandbox exists (its network namespace is the one reported) and the program has not run.
    expect(readlinkSync(`/proc/${pid}/ns/net`)).toBe(`net:[${info["net-namespace"]}]`);
    await new Promise((r) => setTimeout(r, 300));
    expect(stdout).toBe("");
    expect(p.exitCode).toBeNull();
    (p.stdio[3] as Writable).end("x");
    const code = await new Promise((r) => p.once("close", r));
    expect(code).toBe(0);
    expect(stdout).toBe(`ran\nnet:[${info["net-namespace"]}]\n`);
  });
});
