import { describe, expect, it } from "vitest";
import { chartPoints } from "./pages/health";

describe("chartPoints", () => {
  it("spreads the scores across the width, 100 at the top", () => {
    expect(chartPoints([100, 50, 0], 300, 100)).toBe("0,0 150,50 300,100");
  });
  it("draws nothing without scores and a dot for one", () => {
    expect(chartPoints([], 300, 100)).toBe("");
    expect(chartPoints([82], 300, 100)).toBe("0,18");
  });
});
