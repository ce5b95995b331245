/**
 * vitest globalSetup: the one seed every randomized test runs with, printed
 * once per run so a failure can be replayed. CI never draws a fresh seed:
 * the default is fixed. `USERNS_TEST_SEED=N npm test` replays or explores
 * another; exploration with fresh seeds belongs to `userns verify`
 * campaigns, which log theirs.
 */
export const DEFAULT_TEST_SEED = 20261206;

export default function setup(): void {
  const raw = process.env.USERNS_TEST_SEED;
  const seed = raw === undefined || raw === "" ? DEFAULT_TEST_SEED : Number(raw);
  if (!Number.isSafeInteger(seed)) throw new Error(`USERNS_TEST_SEED must be an integer, not ${JSON.stringify(raw)}`);
  // The test files run in forked workers, which inherit this environment.
  process.env.USERNS_TEST_SEED = String(seed);
  console.log(`randomized tests: fast-check seed ${seed} (replay with USERNS_TEST_SEED=${seed})`);
}
