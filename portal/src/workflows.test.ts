import { describe, expect, it } from "vitest";
import { parseDefinition } from "./pages/workflows";

describe("parseDefinition", () => {
  it("answers the JSON of a definition", () => {
    expect(parseDefinition('{"trigger": "Contact Created", "steps": []}').value).toEqual({
      trigger: "Contact Created",
      steps: [],
    });
  });
  it("says the text is not JSON rather than sending it", () => {
    const parsed = parseDefinition('{"trigger": ');
    expect(parsed.value).toBeUndefined();
    expect(parsed.error).toMatch(/^The definition is not valid JSON: /);
  });
});
