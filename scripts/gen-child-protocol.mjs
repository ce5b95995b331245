// Writes native/child/protocol.h from lib/child/protocol.ts (through the
// compiled dist/, so run `npm run build:ts` first; `npm run gen:protocol`
// does both). test/unit/child-protocol.test.ts checks the result is current.
import { writeFileSync } from "node:fs";
import { renderProtocolHeader } from "../dist/child/protocol-header.js";

const out = new URL("../native/child/protocol.h", import.meta.url);
writeFileSync(out, renderProtocolHeader());
console.log(`wrote ${out.pathname}`);
