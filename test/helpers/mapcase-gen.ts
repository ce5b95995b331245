/**
 * A fast-check generator of map-write cases (case-formats §1) spread over
 * every input field: kinds, parents (none, string, object with setgroups,
 * chains), lines (plausible maps, random triples, separators, malformed
 * text), writer/creator/opener roles and objects with uid/gid/drop_caps,
 * setgroups before, second writes by every fd mode, setgroups after.
 */
import fc from "fast-check";

const num = fc.oneof(
  fc.constantFrom(0, 1, 5, 10, 999, 1000, 1001, 65534, 65535, 65536, 100000, 4294967294, 4294967295, 4294967296),
  fc.nat(200000),
);
const triple = fc
  .tuple(num, num, fc.oneof(fc.constantFrom(0, 1, 2, 10, 1000, 65536, 4294967295), fc.nat(70000)))
  .map(([a, b, c]) => `${a} ${b} ${c}`);
const sep = fc.constantFrom(" ", "  ", "\t", " \r");
const plausible = fc
  .array(
    fc.tuple(
      fc.constantFrom(0, 1, 1000, 5000),
      fc.constantFrom(0, 1, 1000, 1500, 65534, 100000, 200000),
      fc.constantFrom(1, 2, 10, 1000, 65536),
    ),
    { minLength: 1, maxLength: 3 },
  )
  .map((ts) => `${ts.map((t) => t.join(" ")).join("\n")}\n`);
const lines = fc.oneof(
  { weight: 10, arbitrary: plausible },
  {
    weight: 6,
    arbitrary: fc
      .array(triple, { minLength: 1, maxLength: 7 })
      .chain((ls) => fc.constantFrom(ls.join("\n"), `${ls.join("\n")}\n`)),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom("", "\n", "0 0 1\n\n", "0 0", "0x1 0 1", "0 0 1 1", "0 1000 1", "5 0 1", "0 65534 1"),
  },
  { weight: 1, arbitrary: fc.tuple(num, sep, num, sep, num).map((p) => p.join("")) },
);
const cap = fc.constantFrom("CAP_SETFCAP", "CAP_SETUID", "CAP_SETGID", "CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE");
const credObj = (role: fc.Arbitrary<string>) =>
  fc.record(
    {
      role,
      uid: fc.constantFrom(0, 1000, 1001, 65534),
      gid: fc.constantFrom(0, 1000),
      drop_caps: fc.array(cap, { maxLength: 2 }),
    },
    { requiredKeys: ["role"] },
  );
const cred = (role: fc.Arbitrary<string>) =>
  fc.oneof({ weight: 3, arbitrary: role as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: credObj(role) });
const pmap = fc.constantFrom(
  "0 100000 65536",
  "0 100000 1000\n1000 200000 1000",
  "0 0 1000",
  "0 0 4294967295",
  "0 1000 1\n1 100000 65535",
  "0 100000 2000",
);
const parent = fc.oneof(
  { weight: 3, arbitrary: fc.constant(null) as fc.Arbitrary<unknown> },
  { weight: 2, arbitrary: pmap },
  {
    weight: 1,
    arbitrary: fc.record(
      { uid_map: pmap, gid_map: pmap, setgroups: fc.constantFrom("deny", "allow") },
      { requiredKeys: ["uid_map", "gid_map"] },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.array(fc.constantFrom("0 100000 65536", "0 0 65536", "0 1000 2000"), { minLength: 2, maxLength: 3 }),
  },
);

/** Map-write cases; `id` is added by {@link sampleMapCases}. */
export const mapCaseArb = fc.record(
  {
    kind: fc.constantFrom("uid", "gid", "projid"),
    parent,
    lines,
    writer: cred(fc.constantFrom("privileged", "unprivileged", "inside")),
    creator: cred(fc.constantFrom("privileged", "unprivileged")),
    opener: cred(fc.constantFrom("privileged", "unprivileged", "inside")),
    setgroups: fc.constantFrom("deny", "allow", "deny\n", "denyx", "deny    "),
    second: fc.constantFrom("0 0 1", "1 1 1", "0 1000 1"),
    second_fd: fc.constantFrom("same", "reopen", "pwrite0"),
    setgroups_after: fc.constantFrom("deny", "allow"),
  },
  { requiredKeys: ["kind", "lines", "writer"] },
);

/** A reproducible sample of `n` cases with ids `<prefix><i>`. */
export function sampleMapCases(seed: number, n: number, prefix = "g"): Record<string, unknown>[] {
  return fc.sample(mapCaseArb, { seed, numRuns: n }).map((c, i) => ({ id: `${prefix}${i}`, ...c }));
}
