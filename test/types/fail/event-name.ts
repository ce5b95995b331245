// The handle's events are typed: an unknown event name does not compile.
// expect: TS2345
import { spawn } from "../../../lib/index.js";

spawn("true").on("exitt", () => {});
