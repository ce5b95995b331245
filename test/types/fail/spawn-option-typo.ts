// A misspelt spawn option does not compile.
// expect: TS2561
import { spawn } from "../../../lib/index.js";

spawn("true", [], { timout: 5 });
