/**
 * vitest setupFiles: every fast-check property in every test file runs with
 * the run's fixed seed (chosen and printed once by fc-seed-global.ts).
 * A property that passes its own `seed` keeps it.
 */
import fc from "fast-check";

const seed = Number(process.env.USERNS_TEST_SEED ?? 20261206);
fc.configureGlobal({ ...fc.readConfigureGlobal(), seed });
