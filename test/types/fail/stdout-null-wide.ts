// A stdio option whose type does not say 'pipe' leaves the stream nullable.
// expect: TS2531
import { type SpawnOptions, spawn } from "../../../lib/index.js";

declare const options: SpawnOptions;
spawn("true", [], options).stdout.on("data", () => {});
