import { defineConfig } from "vitest/config";

// Served by the `portal` Cloud Function under /portal/ (locally and deployed); hashed asset names are
// cached for a year by that function, index.html never.
export default defineConfig({
  base: "/portal/",
  build: {
    outDir: "../functions/portal/static",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    modulePreload: { polyfill: false },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
