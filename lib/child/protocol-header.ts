/**
 * Renders native/child/protocol.h from the tables in ./protocol.ts, so the
 * C++ engines take their op numbers and record layouts from the same place
 * as the TypeScript encoders. Run by scripts/gen-child-protocol.mjs; checked
 * by test/unit/child-protocol.test.ts.
 *
 * @internal
 * @packageDocumentation
 */
import {
  FS_OP,
  layout,
  type RecordField,
  RUNNER,
  RUNNER_CASE_HEADER,
  RUNNER_OPS,
  RUNNER_STEP,
  SPAWN_OPS,
} from "./protocol.js";

/** `join` -> `kJoin`: the C++ name of an op. */
export function cppOpName(name: string): string {
  return `k${name[0]!.toUpperCase()}${name.slice(1)}`;
}

const CTYPE: Record<RecordField["type"], string> = {
  u8: "uint8_t",
  u16: "uint16_t",
  u32: "uint32_t",
  i32: "int32_t",
  u64: "uint64_t",
  i64: "int64_t",
};

function struct(name: string, fields: readonly RecordField[]): string[] {
  const { offsets, size } = layout(fields);
  const out = [`struct ${name} {`];
  for (const f of fields) out.push(`  ${CTYPE[f.type]} ${f.name};${f.doc ? `  // ${f.doc}` : ""}`);
  out.push("};");
  out.push(`static_assert(sizeof(${name}) == ${size}, "${name} layout");`);
  for (const f of fields)
    out.push(`static_assert(offsetof(${name}, ${f.name}) == ${offsets[f.name]}, "${name}.${f.name}");`);
  return out;
}

/** The header text, byte for byte. */
export function renderProtocolHeader(): string {
  const L: string[] = [];
  L.push(
    "// GENERATED from lib/child/protocol.ts by scripts/gen-child-protocol.mjs",
    "// (npm run gen:protocol). Do not edit: change the table there and regenerate;",
    "// test/unit/child-protocol.test.ts fails while the two differ.",
    "// Plain C++: no N-API, so the child side can include it.",
    "#pragma once",
    "#include <cstddef>",
    "#include <cstdint>",
    "",
    "namespace userns {",
    "namespace protocol {",
    "",
    "// ---- spawn child (native/child/run.cc): five numbers per step, op a b s s2",
    "namespace spawn {",
    "enum SpawnOp : int32_t {",
  );
  const spawn = Object.entries(SPAWN_OPS);
  for (const [name, o] of spawn) L.push(`  ${cppOpName(name)} = ${o.op},  // ${o.doc}`);
  L.push("};");
  L.push(`constexpr int32_t kSpawnOpMax = ${Math.max(...spawn.map(([, o]) => o.op))};`);
  L.push(
    "// Slots an op reads: 1 a, 2 b, 4 s (required), 8 s2 (required: a string or a blob), 16 gids (a offset, b count).",
  );
  L.push("constexpr uint8_t SpawnOpSlots(int32_t op) {");
  L.push("  switch (op) {");
  for (const [name, o] of spawn) {
    const a = o.args as Partial<Record<string, string>>;
    const bits = (a.a ? 1 : 0) | (a.b ? 2 : 0) | (a.s ? 4 : 0) | (a.s2 || a.blob ? 8 : 0) | (a.gids ? 16 : 0);
    L.push(`    case ${cppOpName(name)}: return ${bits};`);
  }
  L.push("    default: return 0;", "  }", "}");
  L.push("constexpr bool SpawnOpKnown(int32_t op) {", "  switch (op) {");
  for (const [name] of spawn) L.push(`    case ${cppOpName(name)}:`);
  L.push("      return true;", "    default:", "      return false;", "  }", "}");
  L.push("constexpr uint8_t kSlotA = 1, kSlotB = 2, kSlotS = 4, kSlotS2 = 8, kSlotGids = 16;");
  L.push("}  // namespace spawn");
  L.push("");
  L.push("// ---- verify runner (native/runner.cc)");
  L.push("namespace runner {");
  L.push("enum RunnerOp : uint8_t {");
  const runner = Object.entries(RUNNER_OPS);
  for (const [name, o] of runner) L.push(`  ${cppOpName(name)} = ${o.op},  // ${o.doc}`);
  L.push(`  kRunnerOpMax = ${Math.max(...runner.map(([, o]) => o.op))},`);
  L.push("};");
  L.push(...struct("CaseHeader", RUNNER_CASE_HEADER));
  L.push(...struct("RunnerStep", RUNNER_STEP));
  L.push(`constexpr uint32_t kCaseHeaderSize = ${layout(RUNNER_CASE_HEADER).size};`);
  L.push(`constexpr uint32_t kStepSize = ${layout(RUNNER_STEP).size};`);
  L.push(`constexpr uint32_t kResultSize = ${RUNNER.resultSize};  // {i64 ret; i32 err; i32 aux}`);
  L.push(`constexpr uint32_t kCaseStatusSize = ${RUNNER.statusSize};`);
  L.push(`constexpr int kMaxAgents = ${RUNNER.maxAgents};`);
  L.push(`constexpr int kMaxFdSlots = ${RUNNER.maxFdSlots};`);
  L.push(`constexpr uint8_t kTargetSelf = 0x${RUNNER.targetSelf.toString(16)};`);
  L.push(`enum StepFlags : uint8_t { kRequired = ${RUNNER.flags.required}, kCapsAll = ${RUNNER.flags.capsAll} };`);
  L.push(
    `enum Status : int32_t { ${Object.entries(RUNNER.status)
      .map(([k, v]) => `${cppOpName(k)} = ${v}`)
      .join(", ")} };`,
  );
  L.push(`const char *const kFiles[] = {${RUNNER.files.map((f) => `"${f}"`).join(", ")}};`);
  L.push(`constexpr uint8_t kNumFiles = ${RUNNER.files.length};`);
  L.push("}  // namespace runner");
  L.push("");
  L.push("// ---- mount helper fsOpAs (native/mount.cc)");
  L.push("namespace fsop {");
  L.push(
    `enum FsCredMode : int32_t { ${Object.entries(FS_OP.credMode)
      .map(([k, v]) => `kCred${cppOpName(k).slice(1)} = ${v}`)
      .join(", ")} };`,
  );
  L.push(
    `enum FsOp : int32_t { ${Object.entries(FS_OP.op)
      .map(([k, v]) => `kFs${cppOpName(k).slice(1)} = ${v}`)
      .join(", ")} };`,
  );
  L.push(
    `enum FsStep : int32_t { ${Object.entries(FS_OP.step)
      .map(([k, v]) => `kFsStep${cppOpName(k).slice(1)} = ${v}`)
      .join(", ")} };`,
  );
  L.push('// The name of an FsStep in results ("" for none).');
  L.push("constexpr const char *FsStepName(int32_t step) {", "  switch (step) {");
  for (const [k, v] of Object.entries(FS_OP.step)) L.push(`    case ${v}: return "${k}";`);
  L.push('    default: return "";', "  }", "}");
  L.push("}  // namespace fsop");
  L.push("", "}  // namespace protocol", "}  // namespace userns", "");
  return L.join("\n");
}
