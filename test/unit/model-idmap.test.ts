import { describe, expect, it } from "vitest";
import { extent, IdMap, lastLower, lastUpper, toU32 } from "../../lib/model/index.js";

describe("IdMap value type", () => {
  it("keeps written order and sorted views", () => {
    const m = IdMap.of([10, 100, 5], [0, 200, 10]);
    expect(m.extents.map((e) => e.first)).toEqual([10, 0]);
    expect(m.forward.map((e) => e.first)).toEqual([0, 10]);
    expect(m.reverse.map((e) => e.lowerFirst)).toEqual([100, 200]);
    expect(Object.isFrozen(m)).toBe(true);
    expect(Object.isFrozen(m.extents)).toBe(true);
  });

  it("prints in write order up to 5 extents and sorted above", () => {
    const five = IdMap.of(...[4, 3, 2, 1, 0].map((i) => [i * 10, i * 10, 10] as const));
    expect(five.printOrder.map((e) => e.first)).toEqual([40, 30, 20, 10, 0]);
    const six = IdMap.of(...[5, 4, 3, 2, 1, 0].map((i) => [i * 10, i * 10, 10] as const));
    expect(six.printOrder.map((e) => e.first)).toEqual([0, 10, 20, 30, 40, 50]);
  });

  it("equality is on written extents; sameMapping on the canonical form", () => {
    const a = IdMap.of([0, 1000, 10], [10, 1010, 10]);
    const b = IdMap.of([0, 1000, 20]);
    expect(a.equals(b)).toBe(false);
    expect(a.sameMapping(b)).toBe(true);
    expect(a.canonical().equals(b)).toBe(true);
    expect(IdMap.of([0, 1000, 10], [10, 2000, 10]).sameMapping(b)).toBe(false);
  });

  it("formats as map_write text", () => {
    expect(IdMap.of([0, 100000, 65536]).toString()).toBe("0 100000 65536\n");
    expect(IdMap.IDENTITY.toString()).toBe("0 0 4294967295\n");
  });

  it("rejects non-u32 fields and zero counts", () => {
    expect(() => extent(-1, 0, 1)).toThrow(RangeError);
    expect(() => extent(0, 0, 0)).toThrow(RangeError);
    expect(() => extent(0, 2 ** 32, 1)).toThrow(RangeError);
    expect(() => extent(0.5, 0, 1)).toThrow(RangeError);
  });

  it("interval helpers and u32 truncation", () => {
    const e = extent(5, 100, 10);
    expect(lastUpper(e)).toBe(14);
    expect(lastLower(e)).toBe(109);
    expect(toU32(4294967296)).toBe(0);
    expect(toU32(4294967301)).toBe(5);
    expect(toU32(18446744073709551615n)).toBe(4294967295);
  });
});
