import { describe, expect, it } from "vitest";
import { plainLsOptions } from "../../lib/cli/ls.js";

describe("plainLsOptions: which command lines bin/userns.js runs without commander", () => {
  it.each([
    [["ls"], {}],
    [["ls", "--json"], { json: true }],
    [["ls", "--tree", "--check"], { tree: true, check: true }],
    [["ls", "--check", "--json", "--tree"], { check: true, json: true, tree: true }],
  ])("%j → %j", (argv, opts) => {
    expect(plainLsOptions(argv)).toEqual(opts);
  });

  it.each([
    [[]],
    [["ids"]],
    [["ls", "--help"]],
    [["ls", "--json", "--json"]],
    [["ls", "-h"]],
    [["ls", "x"]],
    [["ls", "--bogus"]],
  ])("%j goes to commander", (argv) => {
    expect(plainLsOptions(argv)).toBeUndefined();
  });
});
