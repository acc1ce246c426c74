// Small shared pieces of the screens: headings, notices, busy buttons, problem messages.
import { formatTime, h } from "./dom";
import { ApiError } from "./problem";

export function heading(text: string): HTMLHeadingElement {
  return h("h1", { tabindex: "-1" }, text);
}

export function notice(kind: "error" | "info" | "ok" | "warn", text: string): HTMLElement {
  return h("p", { class: `notice ${kind}`, role: kind === "error" || kind === "warn" ? "alert" : "status" }, text);
}

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return error instanceof Error ? error.message : String(error);
}

/** Run `work` with the button disabled and a status line that says what happened. */
export async function busy(button: HTMLButtonElement, status: HTMLElement, work: () => Promise<string | void>) {
  button.disabled = true;
  status.replaceChildren();
  try {
    const done = await work();
    if (done) status.replaceChildren(notice("ok", done));
  } catch (error) {
    status.replaceChildren(notice("error", errorText(error)));
  } finally {
    button.disabled = false;
  }
}

export function statusBox(): HTMLDivElement {
  return h("div", { class: "status", "aria-live": "polite" });
}

export function table(headers: string[], rows: HTMLTableRowElement[], caption: string): HTMLElement {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows),
    ),
  );
}

export interface RunStep {
  name: string;
  status: string;
  attempts: number;
  error: unknown;
  finished_at: string | null;
}

/** A step engine run's steps (onboarding, offboarding, workflows), one list item each. */
export function stepList(steps: RunStep[], testId: string): HTMLOListElement {
  return h(
    "ol",
    {},
    steps.map((step) =>
      h(
        "li",
        { "data-testid": testId },
        `${step.name}: ${step.status}`,
        step.attempts > 1 ? ` (${step.attempts} attempts)` : "",
        step.finished_at ? ` · ${formatTime(step.finished_at)}` : "",
        step.error ? ` · ${typeof step.error === "string" ? step.error : JSON.stringify(step.error)}` : "",
      ),
    ),
  );
}
