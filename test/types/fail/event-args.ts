// 'exit' listeners get (number | null, Signals | null).
// expect: TS2345
import { spawn } from "../../../lib/index.js";

spawn("true").on("exit", (code: string) => code.length);
