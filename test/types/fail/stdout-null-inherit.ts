// With stdio "inherit" stdout is null: using it does not compile.
// expect: TS18047
import { spawn } from "../../../lib/index.js";

const child = spawn("true", [], { stdio: "inherit" });
child.stdout.on("data", () => {});
