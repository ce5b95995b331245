/** `userns verify` option checking (exit code 2 for usage), before any kernel work. */
import { expect, it } from "vitest";
import { buildProgram } from "../../lib/cli/main.js";

it.each([
  [["--jobs", "0"], /--jobs must be an integer from 1 to 16/],
  [["--seed", "-1"], /--seed must be an integer/],
  [["--timeout", "abc"], /--timeout must be an integer/],
  [["--cases", "/nonexistent/cases.jsonl"], /--cases: cannot read/],
])("verify %j is a usage error", async (args, message) => {
  const program = buildProgram({ out: () => {}, err: () => {} });
  await expect(program.parseAsync(["verify", ...args], { from: "user" })).rejects.toMatchObject({
    code: "ERR_USERNS_USAGE",
    message: expect.stringMatching(message),
  });
});
