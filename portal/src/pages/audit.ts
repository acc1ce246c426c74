import catalog from "../../../schemas/catalog.json";
import { api, apiText, type Page } from "../api";
import { field, formatTime, h, replace } from "../dom";
import type { Session } from "../session";
import { busy, errorText, heading, notice, statusBox, table } from "../ui";

interface VerifyReport {
  ok: boolean;
  blocks_checked: number;
  entries_checked: number;
  unsealed: number;
  first_broken: { reason?: string; block_seq?: number } | null;
}
interface Entry {
  id: string;
  action: string;
  actor: { type?: string; id?: string; email?: string | null } | null;
  target: { type?: string; id?: string } | null;
  occurred_at: string;
  outcome?: string;
  [key: string]: unknown;
}
interface Condition {
  path: string;
  equals?: unknown;
  in?: unknown[];
}
interface Rule {
  id: string;
  kind: "match" | "threshold";
  name: string;
  severity: string;
  action: string;
  condition?: Condition | null;
  enabled: boolean;
  min_count?: number;
  window_seconds?: number;
  per_actor?: boolean;
}
interface Alert {
  id: string;
  rule_name: string;
  severity: string;
  summary: string;
  actor_id: string | null;
  raised_at: string;
}

/** The actions the trail records: the catalog's events the Audit API consumes, named by their slug. */
export const AUDITED_ACTIONS: string[] = catalog.events
  .filter((event) => event.subscribers.includes("Audit API"))
  .map((event) => event.slug.replace(/-/g, "."))
  .sort();
const SEVERITIES = ["low", "medium", "high", "critical"];

function options(values: string[], blank?: string): HTMLOptionElement[] {
  const list = values.map((value) => h("option", { value }, value));
  return blank === undefined ? list : [h("option", { value: "" }, blank), ...list];
}

/** A datetime-local value (the browser's local time) as an ISO instant the API accepts. */
function instant(local: string): string | null {
  if (!local) return null;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** Save text as a file the browser downloads (the export needs the bearer token, so no plain link). */
function download(text: string, name: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function trailSection(session: Session): HTMLElement {
  const base = `/tenants/${session.tenantId}/audit`;
  const action = h("select", { name: "action" }, options(AUDITED_ACTIONS, "Any action"));
  const actor = h("input", { name: "actor", maxlength: "512" });
  const target = h("input", { name: "target", maxlength: "512" });
  const since = h("input", { type: "datetime-local", name: "since" });
  const until = h("input", { type: "datetime-local", name: "until" });
  const search = h("button", { type: "submit", class: "primary" }, "Apply filters");
  const exportButton = h("button", { type: "button" }, "Export NDJSON");
  const status = statusBox();
  const list = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const detail = h("div", { "aria-live": "polite" });
  const pager = h("div", { class: "toolbar" });
  // Cursors of the pages before the current one, to go back; the API pages forward only.
  const previous: (string | null)[] = [];
  let current: string | null = null;

  function query(cursor: string | null, paged: boolean): string {
    const params = new URLSearchParams();
    if (action.value) params.set("action", action.value);
    if (actor.value.trim()) params.set("actor", actor.value.trim());
    if (target.value.trim()) params.set("target", target.value.trim());
    const from = instant(since.value);
    const to = instant(until.value);
    if (from) params.set("since", from);
    if (to) params.set("until", to);
    if (paged) params.set("limit", "25");
    if (cursor) params.set("cursor", cursor);
    const text = params.toString();
    return text ? `?${text}` : "";
  }

  async function showEntry(entry: Entry): Promise<void> {
    replace(detail, h("p", { class: "loading" }, "Loading entry…"));
    try {
      const full = await api<Entry>("audit_api", `${base}/entries/${entry.id}`);
      replace(
        detail,
        h(
          "section",
          { class: "card", "aria-label": "Audit entry", "data-testid": "entry-detail" },
          h("h2", {}, `Entry ${full.action}`),
          h(
            "dl",
            {},
            h("dt", {}, "When"),
            h("dd", {}, formatTime(full.occurred_at)),
            h("dt", {}, "Actor"),
            h("dd", {}, describeActor(full.actor)),
            h("dt", {}, "Target"),
            h("dd", {}, `${full.target?.type ?? ""} ${full.target?.id ?? ""}`),
          ),
          h("pre", { class: "json", tabindex: "0", "aria-label": "The entry as recorded" }, JSON.stringify(full, null, 2)),
        ),
      );
      (detail.querySelector("h2") as HTMLElement | null)?.scrollIntoView({ block: "nearest" });
    } catch (error) {
      replace(detail, notice("error", errorText(error)));
    }
  }

  async function load(cursor: string | null): Promise<void> {
    replace(list, h("p", { class: "loading" }, "Loading…"));
    replace(pager);
    try {
      const page = await api<Page<Entry>>("audit_api", `${base}/entries${query(cursor, true)}`);
      current = cursor;
      if (page.items.length === 0) {
        replace(list, h("p", { class: "empty" }, "No entries match: widen the filters or the time range."));
      } else {
        const rows = page.items.map((entry) => {
          const open = h("button", { type: "button", class: "link" }, entry.action);
          open.addEventListener("click", () => void showEntry(entry));
          return h(
            "tr",
            { "data-testid": "audit-entry" },
            h("td", {}, formatTime(entry.occurred_at)),
            h("td", {}, open),
            h("td", {}, describeActor(entry.actor)),
            h("td", {}, `${entry.target?.type ?? ""} ${entry.target?.id ?? ""}`),
          );
        });
        replace(list, table(["When", "Action", "Actor", "Target"], rows, "Audit entries"));
      }
      if (previous.length > 0) {
        const back = h("button", { type: "button" }, "Previous page");
        back.addEventListener("click", () => void load(previous.pop() ?? null));
        pager.append(back);
      }
      if (page.next_cursor) {
        const next = h("button", { type: "button" }, "Next page");
        const cursorAfter = page.next_cursor;
        next.addEventListener("click", () => {
          previous.push(current);
          void load(cursorAfter);
        });
        pager.append(next);
      }
    } catch (error) {
      replace(list, notice("error", errorText(error)));
    }
  }

  exportButton.addEventListener("click", () =>
    busy(exportButton, status, async () => {
      const text = await apiText("audit_api", `${base}/export${query(null, false)}`, {
        headers: { Accept: "application/x-ndjson, application/problem+json" },
      });
      const lines = text.split("\n").filter((line) => line.length > 0).length;
      download(text, `audit-${session.tenantId}.ndjson`, "application/x-ndjson");
      return `Exported ${lines} entries.`;
    }),
  );

  const form = h(
    "form",
    {
      class: "card inline",
      "aria-label": "Filter the trail",
      onsubmit: (event: Event) => {
        event.preventDefault();
        previous.length = 0;
        void load(null);
      },
    },
    h("h2", {}, "Trail"),
    field("Action", action),
    field("Actor id", actor),
    field("Target id", target),
    field("From", since),
    field("Until", until),
    h("div", { class: "toolbar" }, search, session.perms.can("audit:export") ? exportButton : null),
  );
  void load(null);
  return h("div", {}, form, status, list, pager, detail);
}

function describeActor(actor: Entry["actor"]): string {
  if (!actor) return "—";
  return [actor.email ?? actor.id ?? "", actor.type ? `(${actor.type})` : ""].filter(Boolean).join(" ");
}

function conditionText(condition: Condition | null | undefined): string {
  if (!condition) return "";
  if (condition.in) return ` where ${condition.path} in ${condition.in.map((v) => JSON.stringify(v)).join(", ")}`;
  return ` where ${condition.path} = ${JSON.stringify(condition.equals)}`;
}

function rulesSection(session: Session): HTMLElement {
  const base = `/tenants/${session.tenantId}/audit`;
  const canManage = session.perms.can("audit-alerts:manage");
  const list = h("div", {}, h("p", { class: "loading" }, "Loading rules…"));
  const status = statusBox();

  async function load(): Promise<void> {
    try {
      const answer = await api<{ items: Rule[]; defaults: boolean }>("audit_api", `${base}/alert-rules`);
      const rows = answer.items.map((rule) => {
        const remove = h("button", { type: "button", class: "danger" }, "Delete");
        remove.addEventListener("click", () => {
          if (!confirm(`Delete the alert rule ${rule.name}?`)) return;
          void busy(remove, status, async () => {
            await api("audit_api", `${base}/alert-rules/${rule.id}`, { method: "DELETE" });
            await load();
            return `Rule ${rule.name} deleted.`;
          });
        });
        const when =
          rule.kind === "threshold"
            ? `${rule.min_count} × ${rule.action} within ${rule.window_seconds} s${rule.per_actor ? " by one actor" : ""}`
            : rule.action;
        return h(
          "tr",
          { "data-testid": "alert-rule" },
          h("td", {}, rule.name, h("br", {}), h("small", {}, rule.id)),
          h("td", {}, rule.severity),
          h("td", {}, when, conditionText(rule.condition)),
          h("td", {}, rule.enabled ? "enabled" : "disabled"),
          h("td", { class: "actions" }, canManage && !answer.defaults ? remove : null),
        );
      });
      replace(
        list,
        answer.defaults ? h("p", {}, "The built-in rules apply until you add a rule of your own.") : null,
        table(["Rule", "Severity", "When", "State", "Actions"], rows, "Alert rules"),
      );
    } catch (error) {
      replace(list, notice("error", errorText(error)));
    }
  }

  let form: HTMLElement | null = null;
  if (canManage) {
    const id = h("input", { name: "rule_id", required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,62}", maxlength: "63" });
    const name = h("input", { name: "name", required: true, maxlength: "200" });
    const severity = h("select", { name: "severity" }, options(SEVERITIES));
    const action = h("select", { name: "action" }, options(AUDITED_ACTIONS));
    const kind = h("select", { name: "kind" }, options(["match", "threshold"]));
    const minCount = h("input", { type: "number", name: "min_count", min: "1", max: "1000", value: "5" });
    const windowSeconds = h("input", { type: "number", name: "window_seconds", min: "1", max: "86400", value: "300" });
    const perActor = h("input", { type: "checkbox", name: "per_actor" });
    const path = h("input", { name: "condition_path", maxlength: "300" });
    const values = h("input", { name: "condition_values" });
    const save = h("button", { type: "submit", class: "primary" }, "Save rule");
    const threshold = h(
      "div",
      { class: "inline", hidden: true },
      field("At least", minCount, "entries"),
      field("Within (seconds)", windowSeconds),
      h("label", { class: "check" }, perActor, " Counted per actor"),
    );
    kind.addEventListener("change", () => {
      threshold.hidden = kind.value !== "threshold";
    });
    form = h(
      "form",
      {
        class: "card",
        "aria-label": "Add or replace an alert rule",
        onsubmit: (event: Event) => {
          event.preventDefault();
          void busy(save, status, async () => {
            const body: Record<string, unknown> = {
              kind: kind.value,
              name: name.value.trim(),
              severity: severity.value,
              action: action.value,
            };
            if (kind.value === "threshold") {
              body.min_count = Number(minCount.value);
              body.window_seconds = Number(windowSeconds.value);
              body.per_actor = perActor.checked;
            }
            if (path.value.trim()) {
              const listed = values.value.split(",").map((v) => v.trim()).filter(Boolean);
              body.condition = { path: path.value.trim(), in: listed };
            }
            await api("audit_api", `${base}/alert-rules/${encodeURIComponent(id.value.trim())}`, { method: "PUT", body });
            await load();
            return `Rule ${name.value.trim()} saved.`;
          });
        },
      },
      h("h2", {}, "Add or replace a rule"),
      h(
        "div",
        { class: "inline" },
        field("Rule id", id, "lower case letters, digits, - and _"),
        field("Name", name),
        field("Severity", severity),
        field("Action", action),
        field("Kind", kind),
      ),
      threshold,
      h(
        "div",
        { class: "inline" },
        field("Only when the detail", path, "optional, e.g. new_role"),
        field("Is one of", values, "comma-separated values"),
      ),
      save,
    );
  }
  void load();
  return h("section", { "aria-labelledby": "rules-heading" }, h("h2", { id: "rules-heading" }, "Alert rules"), form, status, list);
}

function alertsSection(session: Session): HTMLElement {
  const list = h("div", {}, h("p", { class: "loading" }, "Loading alerts…"));
  void (async () => {
    try {
      const page = await api<Page<Alert>>("audit_api", `/tenants/${session.tenantId}/audit/alerts?limit=50`);
      if (page.items.length === 0) {
        replace(list, h("p", { class: "empty" }, "No alerts raised: the rules above raise them as entries are sealed."));
        return;
      }
      const rows = page.items.map((alert) =>
        h(
          "tr",
          { "data-testid": "audit-alert" },
          h("td", {}, formatTime(alert.raised_at)),
          h("td", {}, alert.severity),
          h("td", {}, alert.rule_name),
          h("td", {}, alert.summary),
        ),
      );
      replace(list, table(["Raised", "Severity", "Rule", "Summary"], rows, "Alerts"));
    } catch (error) {
      replace(list, notice("error", errorText(error)));
    }
  })();
  return h("section", { "aria-labelledby": "alerts-heading" }, h("h2", { id: "alerts-heading" }, "Alerts"), list);
}

function verifySection(session: Session): HTMLElement {
  const result = statusBox();
  const verify = h("button", { type: "button", class: "primary" }, "Verify chain");
  verify.addEventListener("click", () =>
    busy(verify, result, async () => {
      const report = await api<VerifyReport>("audit_api", `/tenants/${session.tenantId}/audit/verify`);
      const counts = `${report.entries_checked} entries in ${report.blocks_checked} blocks checked, ${report.unsealed} not sealed yet.`;
      result.replaceChildren(
        report.ok
          ? h("p", { class: "notice ok", role: "status", "data-testid": "verify-result" }, `Intact: ${counts}`)
          : notice("error", `Broken: ${report.first_broken?.reason ?? "a block does not match"} (${counts})`),
      );
    }),
  );
  return h(
    "section",
    { class: "card" },
    h("p", {}, "Every change in the workspace is recorded, sealed into hash-chained blocks. Verify recomputes the chain."),
    verify,
    result,
  );
}

export function auditPage(session: Session): HTMLElement {
  const can = (permission: string) => session.perms.can(permission);
  return h(
    "div",
    { class: "page" },
    heading("Audit trail"),
    can("audit:verify") ? verifySection(session) : null,
    can("audit:read") ? trailSection(session) : null,
    can("audit-alerts:read") ? alertsSection(session) : null,
    can("audit-alerts:read") ? rulesSection(session) : null,
  );
}
