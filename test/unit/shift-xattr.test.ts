/**
 * The ACL and file-capability codecs (lib/model/fsxattr.ts) and what the
 * model says a reader in the initial namespace sees through an idmapped
 * mount (spec §9). The kernel tests check the same against the kernel.
 */
import { describe, expect, it } from "vitest";
import {
  ACL_TAG,
  ACL_UNDEFINED_ID,
  aclThroughMount,
  capsThroughMount,
  decodeAcl,
  decodeCaps,
  encodeAcl,
  encodeCaps,
  XattrFormatError,
} from "../../lib/model/fsxattr.js";
import { IdMap } from "../../lib/model/idmap.js";

const M = { uid: IdMap.of([0, 100000, 65536]), gid: IdMap.of([0, 200000, 1000]) };
const acl = [
  { tag: ACL_TAG.USER_OBJ, perm: 7, id: ACL_UNDEFINED_ID },
  { tag: ACL_TAG.USER, perm: 6, id: 5 },
  { tag: ACL_TAG.GROUP_OBJ, perm: 5, id: ACL_UNDEFINED_ID },
  { tag: ACL_TAG.GROUP, perm: 4, id: 1500 },
  { tag: ACL_TAG.MASK, perm: 7, id: ACL_UNDEFINED_ID },
  { tag: ACL_TAG.OTHER, perm: 0, id: ACL_UNDEFINED_ID },
];

describe("POSIX ACL xattr", () => {
  it("round-trips, and the mount translates USER and GROUP ids only (unmapped: 4294967295)", () => {
    expect(decodeAcl(encodeAcl(acl))).toEqual(acl);
    const seen = aclThroughMount(M, acl);
    expect(seen.map((e) => e.id)).toEqual([
      ACL_UNDEFINED_ID,
      100005,
      ACL_UNDEFINED_ID,
      ACL_UNDEFINED_ID,
      ACL_UNDEFINED_ID,
      ACL_UNDEFINED_ID,
    ]);
  });

  it.each([
    ["too short", new Uint8Array([2, 0])],
    ["ragged", new Uint8Array([2, 0, 0, 0, 1, 0, 7, 0])],
    ["version 1", encodeAcl(acl).map((b, i) => (i === 0 ? 1 : b))],
    [
      "unknown tag",
      (() => {
        const b = encodeAcl(acl);
        b[4] = 0x40;
        return b;
      })(),
    ],
    [
      "perm > 7",
      (() => {
        const b = encodeAcl(acl);
        b[6] = 8;
        return b;
      })(),
    ],
    ["named entry without id", encodeAcl([{ tag: ACL_TAG.USER, perm: 1, id: ACL_UNDEFINED_ID }])],
  ])("refuses a malformed value: %s", (_, buf) => {
    expect(() => decodeAcl(buf)).toThrow(XattrFormatError);
  });
});

describe("security.capability", () => {
  const data = [0x2000, 0, 0, 0] as const;
  it("v2 and v3 round-trip", () => {
    expect(decodeCaps(encodeCaps({ version: 2, effective: true, data }))).toEqual({
      version: 2,
      effective: true,
      data,
    });
    expect(decodeCaps(encodeCaps({ version: 3, effective: false, data, rootid: 7 }))).toEqual({
      version: 3,
      effective: false,
      data,
      rootid: 7,
    });
  });

  it("through a mount: v2 becomes v3 with the mapped root, a root mapping to 0 reads as v2, an unmapped one is EOVERFLOW", () => {
    expect(capsThroughMount(M, { version: 2, effective: true, data })).toEqual({
      version: 3,
      effective: true,
      data,
      rootid: 100000,
    });
    expect(
      capsThroughMount(
        { uid: IdMap.of([100000, 0, 10]), gid: M.gid },
        { version: 3, effective: true, data, rootid: 100000 },
      ),
    ).toEqual({
      version: 2,
      effective: true,
      data,
    });
    expect(capsThroughMount(M, { version: 3, effective: true, data, rootid: 70000 })).toBe("EOVERFLOW");
  });

  it.each([
    ["10 bytes", new Uint8Array([0, 0, 0, 2, 1, 2, 3, 4, 5, 6])],
    ["v1 (12 bytes)", new Uint8Array(12).map((_, i) => (i === 3 ? 1 : 0))],
    [
      "v2 magic with v3 size",
      (() => {
        const b = new Uint8Array(24);
        b[3] = 2;
        return b;
      })(),
    ],
    [
      "unknown flag bits",
      (() => {
        const b = encodeCaps({ version: 2, effective: false, data });
        b[1] = 1;
        return b;
      })(),
    ],
  ])("refuses a malformed value: %s", (_, buf) => {
    expect(() => decodeCaps(buf)).toThrow(XattrFormatError);
  });
});
