import { api, type Page } from "../api";
import { field, formatTime, h, replace } from "../dom";
import type { Session } from "../session";
import { busy, errorText, heading, notice, statusBox, stepList, table, type RunStep } from "../ui";

interface Workflow {
  id: string;
  name: string;
  description: string | null;
  builtin?: boolean;
  status: string;
  trigger: string | null;
  active_version: number | null;
  versions?: number;
}
interface Version {
  version: number;
  status: string;
  definition: unknown;
  created_at?: string;
}
interface Run {
  run_id: string;
  status: string;
  percent: number;
  started_at: string | null;
  error: unknown;
  steps: RunStep[];
}
interface DryRun {
  version: number;
  trigger: string;
  days: number;
  events_examined: number;
  truncated: boolean;
  would_fire: number;
  not_fired: Record<string, number>; // by reason
  matches: { event_id: string; event_time: string; subject: string; actions: { step: string; [key: string]: unknown }[] }[];
}

const EXAMPLE = {
  trigger: "Contact Created",
  steps: [{ name: "tell", type: "notify", message: "{{contact_id}} was added" }],
};

/** The editor's text as JSON, or a problem that names the line the browser stopped at. */
export function parseDefinition(text: string): { value?: unknown; error?: string } {
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return { error: `The definition is not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
}

function editor(value: unknown): HTMLTextAreaElement {
  const area = h("textarea", { name: "definition", rows: "12", spellcheck: "false", class: "code" });
  area.value = JSON.stringify(value, null, 2);
  return area;
}

export function workflowsPage(session: Session): HTMLElement {
  const base = `/tenants/${session.tenantId}/workflows`;
  const canManage = session.perms.can("workflows:manage");
  const status = statusBox();
  const list = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const detail = h("div", { "aria-live": "polite" });

  async function load(): Promise<void> {
    try {
      const page = await api<Page<Workflow>>("workflow_api", `${base}?limit=100`);
      if (page.items.length === 0) {
        replace(list, h("p", { class: "empty" }, canManage ? "No workflows yet: create one above." : "No workflows yet."));
        return;
      }
      const rows = page.items.map((w) => {
        const open = h("button", { type: "button", class: "link" }, w.name);
        open.addEventListener("click", () => void show(w.id));
        return h(
          "tr",
          { "data-testid": "workflow" },
          h("td", {}, open, w.description ? [h("br", {}), h("small", {}, w.description)] : null),
          h("td", {}, w.trigger ?? "—"),
          h("td", {}, w.status, w.active_version ? ` (version ${w.active_version})` : "", w.builtin ? " · built-in" : ""),
        );
      });
      replace(list, table(["Workflow", "Trigger", "Status"], rows, "Workflows"));
    } catch (error) {
      replace(list, notice("error", errorText(error)));
    }
  }

  async function show(id: string): Promise<void> {
    replace(detail, h("p", { class: "loading" }, "Loading workflow…"));
    try {
      const workflow = await api<Workflow & { definitions: Version[] }>("workflow_api", `${base}/${id}`);
      replace(detail, workflowCard(workflow));
      (detail.querySelector("h2") as HTMLElement | null)?.scrollIntoView({ block: "nearest" });
    } catch (error) {
      replace(detail, notice("error", errorText(error)));
    }
  }

  function workflowCard(w: Workflow & { definitions: Version[] }): HTMLElement {
    const cardStatus = statusBox();
    const versions = w.definitions;
    const latest = versions[versions.length - 1];
    const area = editor(latest?.definition ?? EXAMPLE);
    const runs = h("div", {});
    const dryResult = h("div", { "aria-live": "polite" });

    const versionRows = versions.map((v) => {
      const activate = h("button", { type: "button" }, `Activate version ${v.version}`);
      activate.addEventListener("click", () =>
        busy(activate, cardStatus, async () => {
          await api("workflow_api", `${base}/${w.id}/activate`, { method: "POST", body: { version: v.version } });
          await Promise.all([show(w.id), load()]);
        }),
      );
      const view = h("button", { type: "button" }, "Edit from this version");
      view.addEventListener("click", () => {
        area.value = JSON.stringify(v.definition, null, 2);
        area.focus();
      });
      return h(
        "tr",
        { "data-testid": "workflow-version" },
        h("td", {}, String(v.version)),
        h("td", {}, v.status),
        h("td", {}, formatTime(v.created_at)),
        h("td", { class: "actions" }, canManage && v.status !== "active" ? activate : null, canManage ? view : null),
      );
    });

    let manage: HTMLElement | null = null;
    if (canManage) {
      const save = h("button", { type: "submit", class: "primary" }, "Save as draft");
      const archive = h("button", { type: "button", class: "danger" }, "Archive");
      archive.addEventListener("click", () => {
        if (!confirm(`Archive ${w.name}? It stops reacting to events.`)) return;
        void busy(archive, cardStatus, async () => {
          await api("workflow_api", `${base}/${w.id}/archive`, { method: "POST", body: {} });
          await Promise.all([show(w.id), load()]);
        });
      });
      const days = h("input", { type: "number", name: "days", min: "1", max: "30", value: "7" });
      const dry = h("button", { type: "button" }, "Dry run");
      dry.addEventListener("click", () =>
        busy(dry, dryResult, async () => {
          const result = await api<DryRun>("workflow_api", `${base}/${w.id}/dry-run`, {
            method: "POST",
            body: { days: Number(days.value) },
          });
          replace(dryResult, dryRunView(result));
        }),
      );
      manage = h(
        "form",
        {
          "aria-label": "Edit the definition",
          onsubmit: (event: Event) => {
            event.preventDefault();
            void busy(save, cardStatus, async () => {
              const parsed = parseDefinition(area.value);
              if (parsed.error) throw new Error(parsed.error);
              const saved = await api<Workflow & { definitions: Version[] }>("workflow_api", `${base}/${w.id}`, {
                method: "PATCH",
                body: { definition: parsed.value },
              });
              const draft = saved.definitions[saved.definitions.length - 1];
              replace(detail, workflowCard(saved));
              detail.querySelector(".status")?.replaceChildren(notice("ok", `Saved as draft version ${draft?.version ?? ""}.`));
            });
          },
        },
        field("Definition (JSON)", area, "trigger, optional conditions, and steps; the API checks every field"),
        h("div", { class: "toolbar" }, save, w.status === "active" ? archive : null),
        h("div", { class: "toolbar" }, field("Days of past events", days), dry),
      );
    }

    void (async () => {
      try {
        const page = await api<Page<Run>>("workflow_api", `${base}/${w.id}/runs?limit=20`);
        if (page.items.length === 0) {
          replace(runs, h("p", { class: "empty" }, "No runs yet: the workflow runs when its trigger happens while it is active."));
          return;
        }
        replace(
          runs,
          page.items.map((run) =>
            h(
              "details",
              { class: "run", "data-testid": "workflow-run" },
              h("summary", {}, `${run.status} · ${run.percent}% · ${formatTime(run.started_at)}`),
              stepList(run.steps, "run-step"),
            ),
          ),
        );
      } catch (error) {
        replace(runs, notice("error", errorText(error)));
      }
    })();

    return h(
      "section",
      { class: "card", "aria-label": `Workflow ${w.name}`, "data-testid": "workflow-detail" },
      h("h2", {}, w.name),
      h("p", {}, `Status ${w.status}${w.active_version ? `, version ${w.active_version} active` : ""}.`),
      cardStatus,
      h("h3", {}, "Versions"),
      table(["Version", "Status", "Created", "Actions"], versionRows, "Versions"),
      manage,
      dryResult,
      h("h3", {}, "Runs"),
      runs,
    );
  }

  let form: HTMLElement | null = null;
  if (canManage) {
    const name = h("input", { name: "name", required: true, maxlength: "200" });
    const description = h("input", { name: "description", maxlength: "1000" });
    const area = editor(EXAMPLE);
    const create = h("button", { type: "submit", class: "primary" }, "Create workflow");
    form = h(
      "form",
      {
        class: "card",
        "aria-label": "New workflow",
        onsubmit: (event: Event) => {
          event.preventDefault();
          void busy(create, status, async () => {
            const parsed = parseDefinition(area.value);
            if (parsed.error) throw new Error(parsed.error);
            const created = await api<Workflow>("workflow_api", base, {
              method: "POST",
              body: { name: name.value.trim(), description: description.value.trim() || null, definition: parsed.value },
            });
            name.value = "";
            description.value = "";
            await Promise.all([load(), show(created.id)]);
            return `Workflow ${created.name} created as a draft: activate it to run.`;
          });
        },
      },
      h("h2", {}, "New workflow"),
      field("Name", name),
      field("Description", description),
      field("Definition (JSON)", area, "trigger, optional conditions, and steps"),
      create,
    );
  }
  void load();
  return h("div", { class: "page" }, heading("Workflows"), form, status, list, detail);
}

function notFired(reasons: Record<string, number>): string {
  const parts = Object.entries(reasons).map(([reason, count]) => `${count} ${reason}`);
  return parts.length ? `; not fired: ${parts.join(", ")}` : "";
}

function dryRunView(result: DryRun): HTMLElement {
  return h(
    "div",
    { class: "notice info", role: "status", "data-testid": "dry-run" },
    h(
      "p",
      {},
      `Version ${result.version} on ${result.trigger}: ${result.events_examined} events of the last ${result.days} days examined${result.truncated ? " (the newest only)" : ""}; it would fire ${result.would_fire} ${result.would_fire === 1 ? "time" : "times"}${notFired(result.not_fired)}.`,
    ),
    result.matches.length
      ? h(
          "ul",
          {},
          result.matches.map((m) =>
            h("li", {}, `${formatTime(m.event_time)} · ${m.subject}: ${m.actions.map((a) => `${a.step} (${String(a.type ?? "")})`).join(", ")}`),
          ),
        )
      : null,
  );
}
