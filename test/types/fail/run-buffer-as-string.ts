// encoding 'buffer' gives Buffers, not strings.
// expect: TS2322
import { run } from "../../../lib/index.js";

export const out: Promise<string> = run("true", [], { encoding: "buffer" }).then((r) => r.stdout);
