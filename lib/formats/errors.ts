/**
 * The one error every format parser and formatter throws: a UsernsError with
 * code ERR_USERNS_FORMAT that says where the input went wrong (line and
 * column for text, a JSON pointer for JSON, a token index for argument lists).
 */
import { UsernsError } from "../errors.js";

/** Code carried by every format error. */
export const ERR_USERNS_FORMAT = "ERR_USERNS_FORMAT";

/** Where in the input a problem was found. */
export interface FormatPosition {
  /** 1-based line. */
  line?: number;
  /** 1-based column (in UTF-16 code units). */
  column?: number;
  /** JSON pointer such as `/linux/uidMappings/2/hostID`. */
  pointer?: string;
  /** 0-based index of the token (argument, entry or triple) in the input. */
  token?: number;
}

/** A parse or format failure, with the format's name and the position. */
export class FormatError extends UsernsError {
  /** The format's CLI name, e.g. `lxc`. */
  readonly format: string;
  /** 1-based line, when the input is text. */
  readonly line: number | undefined;
  /** 1-based column, when the input is text. */
  readonly column: number | undefined;
  /** JSON pointer, when the input is JSON. */
  readonly pointer: string | undefined;
  /** Token index, when the input is a list of tokens. */
  readonly token: number | undefined;

  /**
   * @param format - the format's CLI name
   * @param step - `parse` or `format`
   * @param reason - what is wrong, in words
   * @param at - where
   */
  constructor(format: string, step: "parse" | "format", reason: string, at: FormatPosition = {}) {
    const where = describePosition(at);
    const attempted = `${step === "parse" ? "parsing" : "formatting"} ${format}${where ? ` at ${where}` : ""}`;
    super(attempted, { code: ERR_USERNS_FORMAT, step, reason });
    this.format = format;
    this.line = at.line;
    this.column = at.column;
    this.pointer = at.pointer;
    this.token = at.token;
  }
}

function describePosition(at: FormatPosition): string {
  const parts: string[] = [];
  if (at.line !== undefined) parts.push(`line ${at.line}`);
  if (at.column !== undefined) parts.push(`column ${at.column}`);
  if (at.pointer !== undefined) parts.push(`${at.pointer === "" ? "/" : at.pointer}`);
  if (at.token !== undefined) parts.push(`token ${at.token}`);
  return parts.join(", ");
}
