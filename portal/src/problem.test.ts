import { describe, expect, it } from "vitest";
import { problemText } from "./problem";

describe("problemText", () => {
  it("shows the title and detail", () => {
    expect(problemText({ title: "Not found", detail: "Contact x was not found." }, 404)).toBe(
      "Not found: Contact x was not found.",
    );
  });
  it("names every refused field of a validation problem", () => {
    const problem = {
      title: "Validation failed",
      detail: "The request is not valid.",
      errors: [
        { pointer: "#/condition/path", detail: "String should match pattern" },
        { pointer: "#/name", detail: "Field required" },
      ],
    };
    expect(problemText(problem, 422)).toBe(
      "Validation failed: The request is not valid. (condition/path: String should match pattern; name: Field required)",
    );
  });
});
