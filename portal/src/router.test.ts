import { describe, expect, it } from "vitest";
import { parseHash } from "./router";

describe("parseHash", () => {
  it("splits the path and the query of the fragment", () => {
    const route = parseHash("#/accept?token=t1.inv_1.abc");
    expect(route.path).toBe("/accept");
    expect(route.params.get("token")).toBe("t1.inv_1.abc");
  });

  it("defaults to the dashboard", () => {
    expect(parseHash("").path).toBe("/");
    expect(parseHash("#users").path).toBe("/users");
  });
});
