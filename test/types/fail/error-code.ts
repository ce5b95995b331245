// `code` is a union of string literals: comparing with a code that cannot occur is an error.
// expect: TS2367
import type { UsernsError } from "../../../lib/index.js";

declare const e: UsernsError;
if (e.code === "ERR_USERNS_TYPO") console.log(e);
