/**
 * u32 arithmetic as the kernel does it. Ids, lower ids and counts are u32;
 * the kernel parses 64-bit values and truncates them silently.
 */

/** 2^32. */
export const U32_RANGE = 0x1_0000_0000;
/** `(u32)-1`: never a valid id (INVALID_UID / INVALID_GID). */
export const INVALID_ID = 0xffff_ffff;
/** Default `kernel.overflowuid` / `kernel.overflowgid` and OVERFLOW_PROJID. */
export const OVERFLOW_ID = 65534;

/** Reduces a non-negative integer modulo 2^32, as the kernel's u64→u32 assignment does. */
export function toU32(n: number | bigint): number {
  if (typeof n === "bigint") return Number(BigInt.asUintN(32, n));
  return n >= 0 && n < U32_RANGE ? n : Number(BigInt.asUintN(32, BigInt(Math.trunc(n))));
}

/** True for an integer in [0, 2^32). */
export function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < U32_RANGE;
}
