/**
 * The uid/gid ranges systemd documents (docs/UIDS-GIDS.md in systemd, the
 * "Summary" table): facts, as data. Each is a claim on host ids that other
 * software allocates from without seeing this library's leases.
 */

/** One documented range. */
export interface DocumentedRange {
  readonly start: number;
  readonly count: number;
  readonly purpose: string;
  /** Who defines it, as the document says. */
  readonly definedBy: "Linux" | "Distributions" | "systemd" | "advice";
}

const r = (first: number, last: number, purpose: string, definedBy: DocumentedRange["definedBy"]): DocumentedRange => ({
  start: first,
  count: last - first + 1,
  purpose,
  definedBy,
});

/**
 * Ranges with a purpose. The "Unused" rows are left out (no claimant); the
 * row 2147483648…4294967294 is kept because the document advises staying
 * away from it (UIDs ≥ 2^31 break devpts, setfsuid() and other code that
 * treats uid_t as signed).
 */
export const SYSTEMD_RANGES: readonly DocumentedRange[] = Object.freeze([
  r(0, 0, "root user", "Linux"),
  r(1, 4, "system users", "Distributions"),
  r(5, 5, "tty group", "systemd"),
  r(6, 999, "system users", "Distributions"),
  r(1000, 60000, "regular users", "Distributions"),
  r(60001, 60513, "human users (systemd-homed)", "systemd"),
  r(60514, 60577, "host users mapped into containers (systemd-nspawn --bind-user)", "systemd"),
  r(61184, 65519, "dynamic service users (DynamicUser=)", "systemd"),
  r(65534, 65534, "nobody user", "Linux"),
  r(65535, 65535, "16-bit (uid_t) -1", "Linux"),
  r(524288, 1879048191, "container UID ranges (systemd-nspawn --private-users=pick, nsresourced)", "systemd"),
  r(2147483648, 4294967294, "HIC SVNT LEONES: ids ≥ 2^31 break code that treats uid_t as signed", "advice"),
  r(4294967295, 4294967295, "32-bit (uid_t) -1, never a valid id", "Linux"),
]);
