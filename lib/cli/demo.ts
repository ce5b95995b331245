/**
 * `userns demo`: shows what the library can do, for real. Each section runs
 * real syscalls or the real model; a section whose feature is missing is not
 * shown, and nothing is canned.
 */
import { nsInfo } from "../kernel/nsfs.js";
import { IdMap, splitAgainstParent, validateMapRequest } from "../model/index.js";

interface Io {
  out: (s: string) => void;
}

/** One demo section: a title and a function that does the real work and returns lines. */
export interface DemoSection {
  title: string;
  run: () => Promise<{ lines: string[]; data: unknown }>;
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
    title: "A refused map, explained by the model, with its split proposal",
    run: async () => {
      // Spec §2.5's verified example: a parent with two extents, and a child
      // map whose lower range straddles the boundary between them.
      const parent = IdMap.of([0, 100000, 1000], [1000, 200000, 1000]);
      const request = "0 500 1000\n";
      const verdict = validateMapRequest({
        kind: "uid",
        map: request,
        parentMap: parent,
        writer: "privileged",
        euid: 0,
        egid: 0,
      });
      const lines = [
        `parent's uid_map:   ${parent.toString().trim().replace("\n", " / ")}`,
        `child's request:    ${request.trim()}`,
        verdict.ok
          ? "verdict:            accepted"
          : `verdict:            ${verdict.errno} (${verdict.rule}): ${verdict.reason}`,
      ];
      const split = splitAgainstParent(IdMap.of([0, 500, 1000]), parent);
      if (split.ok) {
        lines.push(`split proposal:     ${split.map.toString().trim().replaceAll("\n", " / ")}`);
        const again = validateMapRequest({
          kind: "uid",
          map: split.map,
          parentMap: parent,
          writer: "privileged",
          euid: 0,
          egid: 0,
        });
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
];

/** Runs every demo section in order. */
export async function runDemo(io: Io, opts: { json: boolean }): Promise<void> {
  const results: { title: string; data: unknown }[] = [];
  for (const s of sections) {
    const r = await s.run();
    results.push({ title: s.title, data: r.data });
    if (!opts.json) {
      io.out(`\n== ${s.title}\n`);
      for (const l of r.lines) io.out(`   ${l}\n`);
    }
  }
  if (opts.json) io.out(`${JSON.stringify(results)}\n`);
}
