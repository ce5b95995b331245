/**
 * `userns ids [--json]`: every claim on host ids (subuid/subgid, live
 * namespaces, systemd's documented ranges, the kubelet's pods, this
 * library's leases) as one table, with the overlaps between claimants.
 */
import type { Command } from "commander";
import { formatTable } from "./table.js";

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** Adds `ids` to the program. */
export function registerIdsCommand(program: Command, io: Io): void {
  program
    .command("ids")
    .description(
      "who claims which host ids: subuid/subgid, live namespaces, systemd, kubelet pods, leases; with overlaps",
    )
    .option("--dir <dir>", "lease directory (default: the alloc default for this user)")
    .option("--kubelet-root <dir>", "kubelet root directory", "/var/lib/kubelet")
    .option("--no-systemd", "leave out systemd's documented ranges")
    .option("--json", "print JSON")
    .addHelpText("after", "\nExamples:\n  $ userns ids\n  $ userns ids --no-systemd --json\n")
    .action(async (opts: { dir?: string; kubeletRoot: string; systemd: boolean; json?: boolean }) => {
      // Loaded on use (see ls.ts).
      const [{ claimOverlaps, collectClaims }, { listUserNamespaces }, { defaultLeaseDir, readLeases }] =
        await Promise.all([
          import("../inventory/claims.js"),
          import("../inventory/inventory.js"),
          import("../inventory/leases.js"),
        ]);
      const inv = listUserNamespaces();
      const dir = opts.dir ?? defaultLeaseDir();
      const claims = collectClaims({
        inventory: inv,
        systemd: opts.systemd,
        kubeletRootDir: opts.kubeletRoot,
        leases: readLeases(dir),
      });
      const overlaps = claimOverlaps(claims);
      if (opts.json) {
        io.out(`${JSON.stringify({ leaseDir: dir, discovery: inv.discovery.method, claims, overlaps })}\n`);
        return;
      }
      const key = (c: { source: string; claimant: string }) => `${c.source} ${c.claimant}`;
      const rows = claims.map((c) => {
        const with_ = overlaps
          .filter((o) => o.kind === c.kind && (o.a === c || o.b === c))
          .map((o) => key(o.a === c ? o.b : o.a));
        return [
          c.kind,
          String(c.start),
          String(c.start + c.count - 1),
          String(c.count),
          c.source,
          c.claimant,
          c.detail,
          with_.length === 0 ? "" : `${with_.slice(0, 2).join("; ")}${with_.length > 2 ? ` +${with_.length - 2}` : ""}`,
        ];
      });
      io.out(
        formatTable(rows, {
          header: ["KIND", "FIRST", "LAST", "COUNT", "SOURCE", "CLAIMANT", "DETAIL", "OVERLAPS"],
          align: ["left", "right", "right", "right"],
        }),
      );
      io.out(`${overlaps.length} overlap${overlaps.length === 1 ? "" : "s"} between claimants; leases from ${dir}\n`);
      const hidden = inv.discovery.hiddenProcesses;
      const unread = inv.namespaces.filter((n) => n.mapsReadVia === "unread").length;
      if (hidden > 0 || unread > 0)
        io.out(
          `not seen: ${hidden} processes not ours to look into, ${unread} namespaces whose maps we may not read (run as root for the whole host)\n`,
        );
    });
}
