import { expect, it } from "vitest";
import { spawn } from "../../lib/spawn/index.js";
import { describeKernel } from "../helpers/kernel.js";

describeKernel("spawn smoke", () => {
  it("runs id in a new user namespace", async () => {
    const child = spawn("id", [], {
      namespaces: ["user"],
      uidMap: "0 100000 65536",
      gidMap: "0 100000 65536",
      uid: 0,
      gid: 0,
    });
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    const st = await child;
    console.log(out, st, child.mapping);
    expect(st.code).toBe(0);
  });
});
