/**
 * `userns demo`: shows what the library can do, for real. Each section runs
 * real syscalls or the real model; a section whose feature is missing is not
 * shown, and nothing is canned.
 */
import { nsInfo } from "../kernel/nsfs.js";

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
