import { describe, expect, it } from "vitest";
import { Permissions } from "./permissions";
import { problemText, tenantBlock, ApiError } from "./problem";

describe("Permissions", () => {
  it("grants what the role grants and nothing else", () => {
    const member = new Permissions({ roles: ["member"] });
    expect(member.can("notifications:read")).toBe(true);
    expect(member.can("users:invite")).toBe(false);
    const admin = new Permissions({ roles: ["admin"] });
    expect(admin.can("users:invite")).toBe(true);
    expect(admin.can("tenants:suspend")).toBe(false);
  });

  it("gives an operator everything and an unknown role nothing", () => {
    expect(new Permissions({ platform_operator: true }).can("tenants:suspend")).toBe(true);
    expect(new Permissions({ roles: ["nobody"] }).can("tenants:read")).toBe(false);
  });
});

describe("problems", () => {
  it("shows the API's title and detail", () => {
    expect(problemText({ title: "Gone", detail: "The invitation expired." }, 410)).toBe(
      "Gone: The invitation expired.",
    );
    expect(problemText({}, 500)).toBe("Request failed (500)");
  });

  it("recognises a suspended tenant in a 403", () => {
    const suspended = new ApiError(403, { reason: "tenant suspended: unpaid" });
    expect(tenantBlock(suspended)).toBe("suspended: unpaid");
    expect(tenantBlock(new ApiError(403, { reason: "no policy grants x" }))).toBeNull();
    expect(tenantBlock(new Error("x"))).toBeNull();
  });
});
