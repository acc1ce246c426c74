import { api, type Page } from "../api";
import { field, formatTime, h, replace } from "../dom";
import type { Session } from "../session";
import { busy, errorText, heading, notice, statusBox, table } from "../ui";
import { parseDefinition } from "./workflows";

interface Factor {
  factor: string;
  weight: number;
  applicable: boolean;
  measure: number | null;
  points: number | null;
  contribution: number;
  signal_count: number;
}
interface Score {
  organization_id: string | null;
  score: number | null;
  grade: string | null;
  previous_score: number | null;
  trend: string | null;
  model_version: number | null;
  as_of: string | null;
  factors: Factor[] | null;
}
interface HistoryItem {
  seq: number;
  score: number;
  grade: string;
  previous_score: number | null;
  computed_at: string;
  cause_event_name: string | null;
}
interface Model {
  version: number;
  window_days: number;
  factors: unknown[];
  grades: unknown;
  publish_delta: number;
}
interface Both {
  current: { score: number; grade: string };
  proposed: { score: number; grade: string };
  delta: number;
}
interface Preview {
  tenant: Both;
  organizations: (Both & { organization_id: string })[];
  grade_changes: number;
  truncated: boolean;
}

const SVG = "http://www.w3.org/2000/svg";

/** The points of a 0-100 score line across a width×height box, oldest first. */
export function chartPoints(scores: number[], width: number, height: number): string {
  if (scores.length === 0) return "";
  const step = scores.length > 1 ? width / (scores.length - 1) : 0;
  return scores
    .map((score, i) => `${Math.round(i * step * 10) / 10},${Math.round((height - (score / 100) * height) * 10) / 10}`)
    .join(" ");
}

function chart(history: HistoryItem[]): SVGSVGElement {
  const ordered = [...history].sort((a, b) => a.seq - b.seq);
  const scores = ordered.map((item) => item.score);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "-4 -4 308 108");
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  const first = scores[0];
  const last = scores[scores.length - 1];
  svg.setAttribute("aria-label", `Score history: ${scores.length} scores, from ${first ?? "—"} to ${last ?? "—"}`);
  for (const level of [25, 50, 75]) {
    const line = document.createElementNS(SVG, "line");
    line.setAttribute("x1", "0");
    line.setAttribute("x2", "300");
    line.setAttribute("y1", String(100 - level));
    line.setAttribute("y2", String(100 - level));
    line.setAttribute("class", "grid-line");
    svg.appendChild(line);
  }
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", chartPoints(scores, 300, 100));
  line.setAttribute("class", "score-line");
  line.setAttribute("data-testid", "score-line");
  svg.appendChild(line);
  return svg;
}

export function healthPage(session: Session): HTMLElement {
  const base = `/tenants/${session.tenantId}/health`;
  const scoreBox = h("div", { "aria-live": "polite" }, h("p", { class: "loading" }, "Loading…"));
  const orgs = h("div", {}, h("p", { class: "loading" }, "Loading organizations…"));

  async function showScore(organizationId: string | null): Promise<void> {
    const path = organizationId ? `${base}/organizations/${encodeURIComponent(organizationId)}` : base;
    try {
      const [score, history] = await Promise.all([
        api<Score>("customer_health_api", path),
        api<Page<HistoryItem>>("customer_health_api", `${path}/history?limit=50`),
      ]);
      const factors = (score.factors ?? []).map((f) =>
        h(
          "tr",
          { "data-testid": "health-factor" },
          h("td", {}, f.factor.replace(/_/g, " ")),
          h("td", {}, f.applicable ? String(f.measure ?? "—") : "not applicable"),
          h("td", {}, f.points === null ? "—" : String(f.points)),
          h("td", {}, `${f.contribution.toFixed(1)} (weight ${f.weight})`),
          h("td", {}, String(f.signal_count)),
        ),
      );
      const moves = history.items.map((item) =>
        h(
          "li",
          { "data-testid": "health-change" },
          `${formatTime(item.computed_at)}: ${item.previous_score ?? "—"} → ${item.score} (${item.grade})`,
          item.cause_event_name ? ` after ${item.cause_event_name}` : "",
        ),
      );
      replace(
        scoreBox,
        h(
          "section",
          { class: "card", "data-testid": "health-score", "aria-labelledby": "score-heading" },
          h("h2", { id: "score-heading" }, organizationId ? `Organization ${organizationId}` : "Workspace"),
          h("p", { class: "big" }, score.score === null ? "—" : String(score.score)),
          h("p", {}, `Grade ${score.grade ?? "—"}${score.trend ? `, ${score.trend}` : ""} · model version ${score.model_version ?? "—"} · ${formatTime(score.as_of)}`),
          chart(history.items),
          h("h3", {}, "What makes the score"),
          factors.length ? table(["Factor", "Measure", "Points", "Contribution", "Signals"], factors, "Factors") : h("p", { class: "empty" }, "No factors yet."),
          h("h3", {}, "What moved it"),
          moves.length ? h("ol", { class: "alerts" }, moves) : h("p", { class: "empty" }, "No changes recorded yet."),
        ),
      );
    } catch (error) {
      replace(scoreBox, notice("error", errorText(error)));
    }
  }

  async function loadOrganizations(): Promise<void> {
    try {
      const page = await api<Page<Score>>("customer_health_api", `${base}/organizations?limit=50`);
      if (page.items.length === 0) {
        replace(orgs, h("p", { class: "empty" }, "No organization has a score yet: scores come with their customers' activity."));
        return;
      }
      const rows = page.items.map((org) => {
        const open = h("button", { type: "button", class: "link" }, org.organization_id ?? "");
        open.addEventListener("click", () => void showScore(org.organization_id));
        return h("tr", { "data-testid": "health-organization" }, h("td", {}, open), h("td", {}, String(org.score ?? "—")), h("td", {}, org.grade ?? "—"));
      });
      const workspace = h("button", { type: "button" }, "Workspace score");
      workspace.addEventListener("click", () => void showScore(null));
      replace(orgs, h("div", { class: "toolbar" }, workspace), table(["Organization", "Score", "Grade"], rows, "Organizations, lowest first"));
    } catch (error) {
      replace(orgs, notice("error", errorText(error)));
    }
  }

  void showScore(null);
  void loadOrganizations();
  return h(
    "div",
    { class: "page" },
    heading("Customer health"),
    scoreBox,
    h("section", { "aria-labelledby": "orgs-heading" }, h("h2", { id: "orgs-heading" }, "Organizations"), orgs),
    session.perms.can("health:manage") ? modelEditor(base) : null,
  );
}

function modelEditor(base: string): HTMLElement {
  const area = h("textarea", { name: "model", rows: "14", spellcheck: "false", class: "code" });
  const status = statusBox();
  const result = h("div", { "aria-live": "polite" });
  const previewButton = h("button", { type: "button" }, "Preview");
  const save = h("button", { type: "submit", class: "primary" }, "Save model");
  let version: number | null = null; // the ETag the model was read at: a save after someone else's fails

  async function load(): Promise<void> {
    try {
      const model = await api<Model>("customer_health_api", `${base}/model`);
      version = model.version;
      const { window_days, factors, grades, publish_delta } = model;
      area.value = JSON.stringify({ window_days, factors, grades, publish_delta }, null, 2);
    } catch (error) {
      status.replaceChildren(notice("error", errorText(error)));
    }
  }

  function body(): unknown {
    const parsed = parseDefinition(area.value);
    if (parsed.error) throw new Error(parsed.error.replace("definition", "model"));
    return parsed.value;
  }

  previewButton.addEventListener("click", () =>
    busy(previewButton, status, async () => {
      const preview = await api<Preview>("customer_health_api", `${base}/model:preview`, { method: "POST", body: body() });
      const line = (b: Both) => `${b.current.score} (${b.current.grade}) → ${b.proposed.score} (${b.proposed.grade})`;
      replace(
        result,
        h(
          "div",
          { class: "notice info", role: "status", "data-testid": "model-preview" },
          h("p", {}, `Workspace: ${line(preview.tenant)}. ${preview.grade_changes} organizations would change grade.`),
          preview.organizations.length
            ? h("ul", {}, preview.organizations.map((o) => h("li", {}, `${o.organization_id}: ${line(o)}`)))
            : null,
        ),
      );
    }),
  );

  const form = h(
    "form",
    {
      class: "card",
      "aria-label": "Scoring model",
      onsubmit: (event: Event) => {
        event.preventDefault();
        void busy(save, status, async () => {
          const saved = await api<Model>("customer_health_api", `${base}/model`, {
            method: "PUT",
            body: body(),
            headers: version === null ? {} : { "If-Match": `"${version}"` },
          }).catch((error: unknown) => {
            if (error instanceof Error && "status" in error && (error as { status: number }).status === 412) {
              throw new Error("Someone else changed the model since you opened it: reload it, then apply your change again.");
            }
            throw error;
          });
          version = saved.version;
          return `Model version ${saved.version} saved: scores are recomputed with it.`;
        });
      },
    },
    h("h2", {}, "Scoring model"),
    field("Model (JSON)", area, "window_days, factors with weight and tiers, grades, publish_delta"),
    h("div", { class: "toolbar" }, previewButton, save),
    status,
    result,
  );
  void load();
  return form;
}
