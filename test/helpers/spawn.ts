import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { SpawnOptions } from "../../lib/spawn/index.js";
import { spawn } from "../../lib/spawn/index.js";

/** Runs a program with lib spawn and collects its output. */
export async function run(
  file: string,
  args: string[],
  options: SpawnOptions = {},
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; pid: number }> {
  const child = spawn(file, args, options);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const st = await child;
  await closed;
  return { code: st.code, signal: st.signal, stdout, stderr, pid: st.pid };
}

/** The kernel's readback format of one map line: "%10u %10u %10u\n". */
export function procLine(first: number, lower: number, count: number): string {
  return `${String(first).padStart(10)} ${String(lower).padStart(10)} ${String(count).padStart(10)}\n`;
}

/** Open fds of this process. */
export function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Direct children of this process and their states (from /proc/PID/task/TID/children and /proc/CHILD/stat). */
export function children(): { pid: number; state: string }[] {
  const out: { pid: number; state: string }[] = [];
  for (const tid of readdirSync("/proc/self/task")) {
    let text = "";
    try {
      text = readFileSync(`/proc/self/task/${tid}/children`, "utf8");
    } catch {
      continue;
    }
    for (const p of text.trim().split(/\s+/).filter(Boolean)) {
      let state = "?";
      try {
        state = /\) (\S)/.exec(readFileSync(`/proc/${p}/stat`, "utf8"))?.[1] ?? "?";
      } catch {
        state = "gone";
      }
      out.push({ pid: Number(p), state });
    }
  }
  return out;
}

/** This process's fds as "fd=target", sorted (the target names the file: pipe:[inode], anon_inode:[pidfd] ...). */
export function fdTable(): string[] {
  return readdirSync("/proc/self/fd")
    .map((f) => {
      try {
        return `${f}=${readlinkSync(`/proc/self/fd/${f}`)}`;
      } catch {
        return f;
      }
    })
    .sort();
}

/** Gives the event loop time to run exit watchers and close streams. */
export const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 200));

/** Resolves once `text` has appeared on the stream. */
export function waitFor(stream: NodeJS.ReadableStream, text: string): Promise<string> {
  let out = "";
  return new Promise((resolve) => {
    const on = (d: Buffer): void => {
      out += d.toString();
      if (out.includes(text)) {
        stream.off("data", on);
        resolve(out);
      }
    };
    stream.on("data", on);
  });
}
