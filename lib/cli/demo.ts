/**
 * `userns demo`: a tour of what the library does, for real, on this machine.
 * Every section makes real syscalls or runs the real model, and prints what
 * came back; nothing is canned. A section that cannot run here says why.
 */
import { once } from "node:events";
import { existsSync, writeFileSync } from "node:fs";
import { chown } from "node:fs/promises";
import { crossCheck } from "../crosscheck/index.js";
import { native } from "../kernel/native.js";
import { nsInfo } from "../kernel/nsfs.js";
import { IdMap } from "../model/idmap.js";
import { statThroughMount } from "../model/idmapped.js";
import { validateMapRequest } from "../model/mapwrite.js";
import { splitAgainstParent } from "../model/split.js";
import { idmapMount } from "../mounts/idmap-mount.js";
import { UserNamespace } from "../namespaces/user-namespace.js";
import { spawn } from "../spawn/index.js";
import { subids } from "../subid/read.js";
import { runCampaign } from "../verify/campaign.js";
import { formatTable } from "./table.js";

interface Io {
  out: (s: string) => void;
}

/** One demo section: a title and a function that does the real work and returns lines. */
export interface DemoSection {
  title: string;
  /** Why the section cannot run here, or undefined when it can. */
  unavailable?: () => string | undefined;
  run: () => Promise<{ lines: string[]; data: unknown }>;
}

const MAP_A = "0 100000 65536\n";
const MAP_B = "0 1000 1000\n";

/**
 * The map of the demo's outer namespace: as root, MAP_A; as an unprivileged user, the caller's first ranges in
 * /etc/subuid and /etc/subgid (written through newuidmap/newgidmap), or why there is none.
 */
function outerMaps(): { uid: string; gid: string } | { why: string } {
  if (process.getuid?.() === 0) return { uid: MAP_A, gid: MAP_A };
  const report = subids();
  const u = report.subuid[0];
  const g = report.subgid[0];
  const who = report.user.name ?? String(process.getuid?.());
  const ask = `ask an administrator for ranges (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${who})`;
  if (u === undefined || g === undefined)
    return { why: `needs root, or ranges of your own in /etc/subuid and /etc/subgid (none for ${who}): ${ask}` };
  if (u.count < 2000 || g.count < 2000)
    return {
      why: `needs subordinate ranges of at least 2000 ids (${who} has ${u.count} uids, ${g.count} gids): ${ask}`,
    };
  if (!newidmapInstalled()) return { why: "needs newuidmap and newgidmap (Debian/Ubuntu package uidmap)" };
  return { uid: `0 ${u.start} ${u.count}\n`, gid: `0 ${g.start} ${g.count}\n` };
}

function newidmapInstalled(): boolean {
  const path = (process.env.PATH ?? "/usr/bin:/bin").split(":");
  return ["newuidmap", "newgidmap"].every((p) => path.some((d) => existsSync(`${d}/${p}`)));
}

function oneLine(text: string): string {
  return text.trim().split("\n").join(" / ");
}

const sections: DemoSection[] = [
  {
    title: "This process's user namespace, as nsfs reports it",
    run: async () => {
      const info = nsInfo("self", "user");
      return {
        lines: [
          `namespace user:[${info.ino}] on nsfs device ${info.dev}`,
          `NS_GET_ID ${info.id ?? "(not supported by this kernel)"}, owner uid ${info.ownerUid}`,
        ],
        data: {
          ...info,
          dev: String(info.dev),
          ino: String(info.ino),
          id: info.id === undefined ? null : String(info.id),
        },
      };
    },
  },
  {
    title: "A nested namespace with its own map, `id` run inside, and the kernel's read-back beside the model's",
    unavailable: () => {
      const o = outerMaps();
      return "why" in o ? o.why : undefined;
    },
    run: async () => {
      // A: held by an fd, its helper process gone (its maps written directly as root, else through newuidmap with
      // the caller's subordinate ranges). B: created inside A by spawn; its maps are written by a helper living in
      // A, as the kernel only takes them from the parent namespace.
      const outer = outerMaps() as { uid: string; gid: string };
      const a = await UserNamespace.create({ uidMap: outer.uid, gidMap: outer.gid, cache: false });
      try {
        const child = spawn("/bin/sh", ["-c", "id; exec cat"], {
          join: [a],
          namespaces: ["user"],
          uidMap: MAP_B,
          gidMap: MAP_B,
          uid: 0,
          gid: 0,
          stdio: ["pipe", "pipe", "inherit"],
        });
        await once(child, "spawn");
        let idLine = "";
        await new Promise<void>((resolve, reject) => {
          child.stdout!.on("data", (d: Buffer) => {
            idLine += d.toString();
            if (idLine.includes("\n")) resolve();
          });
          child.once("exit", () => reject(new Error(`id exited early: ${idLine}`)));
        });
        let report: Awaited<ReturnType<typeof crossCheck>>;
        try {
          report = await crossCheck(child);
        } catch (e) {
          // `cat` would wait for its stdin for ever: end it (SIGKILL, the program is ours) before reporting.
          child.kill("SIGKILL");
          await child.then(
            () => {},
            () => {},
          );
          throw e;
        }
        child.stdin!.end();
        await child;
        const rows = report.observations
          .filter((o) => o.file !== "setgroups")
          .map((o) => [
            o.vantage === "self" ? "initial ns" : o.vantage === "parent" ? "parent (A)" : "inside (B)",
            o.file,
            (o.kernel ?? "(unreadable)").trim(),
            (o.model ?? "-").trim(),
            o.kernel === o.model ? "yes" : "NO",
          ]);
        const lines = [
          `held namespace A: user:[${a.identity.ino}], uid_map ${outer.uid.trim()} (written ${a.mapping?.method ?? "?"})`,
          `spawned B inside A: maps written via ${child.mapping?.method}: ${oneLine(child.mapping?.uidMap ?? "")}`,
          `id inside B: ${idLine.trim()}`,
          "",
          ...formatTable(rows, { header: ["read from", "file", "kernel shows", "model predicts", "equal"] })
            .trimEnd()
            .split("\n"),
          "",
          `namespace chain: ${report.chain.map((l) => `user:[${l.ino}]`).join(" → ")}; ${report.discrepancies.length} discrepancies`,
        ];
        return { lines, data: { id: idLine.trim(), mapping: child.mapping, report: { ...report, chain: undefined } } };
      } finally {
        a.close();
      }
    },
  },
  {
    title: "An idmapped mount of a scratch tmpfs: on disk, predicted, and stat through the mount",
    unavailable: () =>
      process.getuid?.() === 0
        ? undefined
        : "needs root: this section makes the tmpfs with fsmount() and idmaps it with mount_setattr(MOUNT_ATTR_IDMAP) in the initial user namespace, both CAP_SYS_ADMIN there",
    run: async () => {
      // The tmpfs comes from fsmount(): a detached mount in an anonymous,
      // private mount namespace. It is never attached, so no mount table a
      // process can see changes.
      const b = native();
      const sfd = b.fsopen("tmpfs");
      let raw = -1;
      try {
        b.fsconfigCreate(sfd);
        raw = b.fsmount(sfd, 0);
      } finally {
        b.close(sfd);
      }
      try {
        const owners = [0, 1000, 65535, 65536, 100000];
        for (const u of owners) {
          const p = `/proc/self/fd/${raw}/owned-by-${u}`;
          writeFileSync(p, "");
          await chown(p, u, u);
        }
        const m = idmapMount(`/proc/self/fd/${raw}`, { uidMap: MAP_A, gidMap: MAP_A });
        const maps = { uid: IdMap.of([0, 100000, 65536]), gid: IdMap.of([0, 100000, 65536]) };
        try {
          const rows = owners.map((u) => {
            const disk = b.fstatAt(raw, `owned-by-${u}`, 0);
            const seen = b.fstatAt(m.fd, `owned-by-${u}`, 0);
            const predicted = statThroughMount(maps, "init", { uid: disk.uid, gid: disk.gid });
            return [disk.uid, predicted.uid, seen.uid, predicted.uid === seen.uid ? "yes" : "NO"];
          });
          return {
            lines: [
              `mount map (on-disk → seen): ${MAP_A.trim()}`,
              ...formatTable(rows, {
                header: ["on-disk uid", "model predicts", "stat shows", "equal"],
                align: ["right", "right", "right", "left"],
              })
                .trimEnd()
                .split("\n"),
            ],
            data: { map: MAP_A, rows },
          };
        } finally {
          m.close();
        }
      } finally {
        b.close(raw);
      }
    },
  },
  {
    title: "A refused map, explained by the model, with its split proposal",
    run: async () => {
      // Spec §2.5's verified example: a parent with two extents, and a child
      // map whose lower range straddles the boundary between them.
      const parent = IdMap.of([0, 100000, 1000], [1000, 200000, 1000]);
      const request = "0 500 1000\n";
      const ask = (map: IdMap | string) =>
        validateMapRequest({ kind: "uid", map, parentMap: parent, writer: "privileged", euid: 0, egid: 0 });
      const verdict = ask(request);
      const lines = [
        `parent's uid_map:   ${oneLine(parent.toString())}`,
        `child's request:    ${request.trim()}`,
        verdict.ok
          ? "verdict:            accepted"
          : `verdict:            ${verdict.errno} (${verdict.rule}): ${verdict.reason}`,
      ];
      const split = splitAgainstParent(IdMap.of([0, 500, 1000]), parent);
      if (split.ok) {
        lines.push(`split proposal:     ${oneLine(split.map.toString())}`);
        const again = ask(split.map);
        lines.push(
          `split verdict:      ${again.ok ? "accepted, 1:1 with the lines written" : `${again.errno}: ${again.reason}`}`,
        );
      } else {
        lines.push(`no split possible:  ${split.reason}`);
      }
      return {
        lines,
        data: { parent: parent.toString(), request, verdict, split: split.ok ? split.map.toString() : split.reason },
      };
    },
  },
  {
    title: "A short differential campaign: generated map-write cases, on this kernel and through the model",
    unavailable: () =>
      process.getuid?.() === 0
        ? undefined
        : "needs root: each generated case is built with privileged writers (CAP_SETUID/CAP_SETGID in the initial user namespace) beside unprivileged ones; a campaign restricted to the cases an unprivileged user can build is not written yet",
    run: async () => {
      const { summary, disagreements } = await runCampaign({ count: 500, seed: 1, jobs: 2, shrink: 1 });
      const pct = summary.cases === 0 ? 100 : (100 * summary.agree) / summary.cases;
      const lines = [
        `${summary.cases} cases (seed 1): ${summary.agree} agree (${pct.toFixed(2)}%), ${summary.disagree} disagree, ${Math.round(summary.casesPerSecond)} cases/s`,
        ...disagreements.slice(0, 3).map((d) => `disagreement: ${JSON.stringify(d)}`),
        "run more with: userns verify --cases 100000 --seed 2",
      ];
      return { lines, data: summary };
    },
  },
];

/** Runs every demo section in order; a section that cannot run here says why instead. */
export async function runDemo(io: Io, opts: { json: boolean }): Promise<void> {
  const results: { title: string; data: unknown; skipped?: string }[] = [];
  for (const s of sections) {
    const why = s.unavailable?.();
    if (why !== undefined) {
      results.push({ title: s.title, data: null, skipped: why });
      if (!opts.json) io.out(`\n== ${s.title}\n   (not run here: ${why})\n`);
      continue;
    }
    const r = await s.run();
    results.push({ title: s.title, data: r.data });
    if (!opts.json) {
      io.out(`\n== ${s.title}\n`);
      for (const l of r.lines) io.out(l === "" ? "\n" : `   ${l}\n`);
    }
  }
  if (opts.json) {
    io.out(`${JSON.stringify(results, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}\n`);
  }
}
