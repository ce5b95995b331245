/**
 * `userns alloc` and `userns release`: lease a host id range no claimant
 * uses, and give it back.
 */
import type { Command } from "commander";
import { usageError } from "../errors.js";
import type { Lease } from "../inventory/lease.js";

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

function int(name: string) {
  return (v: string): number => {
    if (!/^[0-9]+$/.test(v)) throw usageError(`${name}: ${JSON.stringify(v)} is not a non-negative integer`);
    return Number(v);
  };
}

function leaseJson(l: Lease): Record<string, unknown> {
  return {
    ...l,
    namespace: l.namespace
      ? { ino: String(l.namespace.ino), id: l.namespace.id === undefined ? null : String(l.namespace.id) }
      : undefined,
  };
}

/** Adds `alloc` and `release` to the program. */
export function registerAllocCommands(program: Command, io: Io): void {
  program
    .command("alloc")
    .description("lease a host uid/gid range that no claimant uses (see `userns ids`)")
    .option("--size <n>", "ids in the range", int("--size"), 65536)
    .option("--align <n>", "the first id is a multiple of this", int("--align"), 65536)
    .option("--apart", "pick the uid and gid ranges separately (default: the same start)")
    .option("--purpose <text>", "stored with the lease", "")
    .option(
      "--dir <dir>",
      "lease directory (default: /var/lib/userns/leases for root, else ~/.local/state/userns/leases)",
    )
    .option(
      "--userns <path>",
      "tie the lease to this user namespace (e.g. /proc/PID/ns/user): released once it is gone",
    )
    .option("--kubelet", "follow the kubelet's slot scheme (slots of 65536, uid map = gid map)")
    .option("--kubelet-root <dir>", "kubelet root directory", "/var/lib/kubelet")
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ userns alloc\n  $ userns alloc --size 131072 --purpose ci --json\n  $ userns alloc --userns /proc/4242/ns/user\n",
    )
    .action(
      async (opts: {
        size: number;
        align: number;
        apart?: boolean;
        purpose: string;
        dir?: string;
        userns?: string;
        kubelet?: boolean;
        kubeletRoot: string;
        json?: boolean;
      }) => {
        // Loaded on use (see ls.ts).
        const { allocateRange } = await import("../inventory/leases.js");
        const a = allocateRange({
          size: opts.size,
          align: opts.align,
          ids: opts.apart ? "apart" : "together",
          purpose: opts.purpose,
          dir: opts.dir,
          tie: opts.userns,
          kubelet: opts.kubelet ? { rootDir: opts.kubeletRoot } : false,
          kubeletRootDir: opts.kubeletRoot,
        });
        const l = a.lease;
        if (opts.json) {
          io.out(`${JSON.stringify({ lease: leaseJson(l), dir: a.dir, reclaimed: a.reclaimed.map((r) => r.id) })}\n`);
          return;
        }
        io.out(`${l.id}\n`);
        io.err(
          `leased uids ${l.uid.start}-${l.uid.start + l.uid.count - 1}, gids ${l.gid.start}-${l.gid.start + l.gid.count - 1} in ${a.dir}${a.reclaimed.length ? ` (reclaimed ${a.reclaimed.length} whose namespace was gone)` : ""}\n`,
        );
      },
    );
  program
    .command("release")
    .description("give back a lease that `userns alloc` printed")
    .argument("<lease>", "the lease id")
    .option("--dir <dir>", "lease directory (default as for alloc)")
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ userns release 3f2a9c0d1e4b5a67\n  $ userns release 3f2a9c0d1e4b5a67 --dir /srv/leases --json\n",
    )
    .action(async (id: string, opts: { dir?: string; json?: boolean }) => {
      const { releaseLease } = await import("../inventory/leases.js");
      const l = releaseLease(id, { dir: opts.dir });
      if (opts.json) io.out(`${JSON.stringify({ released: leaseJson(l) })}\n`);
      else io.out(`released ${l.id}: uids ${l.uid.start}-${l.uid.start + l.uid.count - 1}\n`);
    });
}
