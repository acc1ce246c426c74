import { describe, expect, it } from "vitest";
import { settledSteps } from "./progress";

describe("settledSteps", () => {
  it("counts done and skipped steps, not pending, running or failed ones", () => {
    const steps = ["done", "skipped", "running", "pending", "failed", "waiting", "done"].map((status) => ({ status }));
    expect(settledSteps(steps)).toBe(3);
    expect(settledSteps([])).toBe(0);
  });
});
