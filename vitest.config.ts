import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Kernel tests fork real processes; forks keep each file's native state apart.
    pool: "forks",
    // Fails the run if it leaves temporary directories behind (see the file).
    globalSetup: ["test/helpers/tmp-guard.ts", "test/helpers/fc-seed-global.ts", "test/helpers/compiled-lib-global.ts"],
    // Every randomized test runs with the run's fixed, printed seed (see the files).
    setupFiles: ["test/helpers/fc-seed.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
