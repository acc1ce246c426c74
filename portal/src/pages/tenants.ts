import { api, type Page } from "../api";
import { field, formatTime, h, replace } from "../dom";
import { busy, errorText, heading, notice, statusBox, stepList, table, type RunStep } from "../ui";

interface Tenant {
  id: string;
  name: string;
  slug: string;
  plan: string;
  status: string;
  status_reason: string | null;
  seats_used: number;
  seat_limit: number;
  created_at: string;
}

interface Offboarding {
  runs: { run_id: string; status: string; percent: number; started_at: string | null; steps: RunStep[] }[];
  export: Record<string, unknown> | null;
  proof: Record<string, unknown> | null;
}
const PLANS = ["free", "starter", "growth", "enterprise"];
const DONE = { suspend: "suspended", reactivate: "active again", deactivate: "deactivated: offboarding started" };

export function tenantsPage(): HTMLElement {
  const list = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const status = statusBox();
  const detail = h("div", { "aria-live": "polite" });

  async function showOffboarding(tenant: Tenant): Promise<void> {
    replace(detail, h("p", { class: "loading" }, "Loading offboarding…"));
    try {
      const answer = await api<Offboarding>("tenant_api", `/tenants/${tenant.id}/offboarding`);
      const refresh = h("button", { type: "button" }, "Refresh offboarding");
      refresh.addEventListener("click", () => void showOffboarding(tenant));
      replace(
        detail,
        h(
          "section",
          { class: "card", "data-testid": "offboarding", "aria-labelledby": "offboarding-heading" },
          h("h2", { id: "offboarding-heading" }, `Offboarding of ${tenant.name}`),
          refresh,
          answer.runs.length === 0 ? h("p", { class: "empty" }, "No offboarding run.") : null,
          answer.runs.map((run) =>
            h(
              "div",
              { "data-testid": "offboarding-run" },
              h("h3", {}, `Run ${run.run_id}: ${run.status} (${run.percent}%)`),
              stepList(run.steps, "offboarding-step"),
            ),
          ),
          h("h3", {}, "Export"),
          answer.export ? h("pre", { class: "json", tabindex: "0" }, JSON.stringify(answer.export, null, 2)) : h("p", { class: "empty" }, "Not exported yet."),
          h("h3", {}, "Proof of erasure"),
          answer.proof
            ? h("pre", { class: "json", tabindex: "0", "data-testid": "erasure-proof" }, JSON.stringify(answer.proof, null, 2))
            : h("p", { class: "empty" }, "No proof yet: it is written by the last step."),
        ),
      );
    } catch (error) {
      replace(detail, notice("error", errorText(error)));
    }
  }

  function action(tenant: Tenant, verb: "suspend" | "reactivate" | "deactivate", label: string): HTMLElement {
    const reason = h("input", { name: "reason", required: true, maxlength: "500" });
    const button = h("button", { type: "submit", class: verb === "reactivate" ? "" : "danger" }, label);
    return h(
      "form",
      {
        class: "inline-action",
        onsubmit: (event: Event) => {
          event.preventDefault();
          if (verb === "deactivate" && !confirm(`Deactivate ${tenant.name}? Its data is exported, then erased.`)) return;
          void busy(button, status, async () => {
            await api("tenant_api", `/tenants/${tenant.id}/${verb}`, { method: "POST", body: { reason: reason.value.trim() } });
            await load();
            if (verb === "deactivate") void showOffboarding(tenant);
            return `${tenant.name} is ${DONE[verb]}.`;
          });
        },
      },
      field(`Reason to ${verb} ${tenant.slug}`, reason),
      button,
    );
  }

  async function load(): Promise<void> {
    try {
      const page = await api<Page<Tenant>>("tenant_api", "/tenants?limit=100");
      if (page.items.length === 0) {
        replace(list, h("p", { class: "empty" }, "No tenants yet."));
        return;
      }
      const rows = page.items.map((t) =>
        h(
          "tr",
          { "data-testid": `tenant-${t.slug}` },
          h("td", {}, t.name, h("br", {}), h("small", {}, t.slug)),
          h("td", {}, t.plan),
          h("td", { "data-testid": "status" }, t.status, t.status_reason ? h("small", {}, ` (${t.status_reason})`) : null),
          h("td", {}, `${t.seats_used}/${t.seat_limit}`),
          h("td", {}, formatTime(t.created_at)),
          h(
            "td",
            { class: "actions" },
            t.status === "active" ? action(t, "suspend", "Suspend") : null,
            t.status === "suspended" ? action(t, "reactivate", "Reactivate") : null,
            t.status === "active" || t.status === "suspended" ? action(t, "deactivate", "Deactivate") : null,
            t.status === "deactivated" ? offboardingButton(t) : null,
          ),
        ),
      );
      replace(list, table(["Tenant", "Plan", "Status", "Seats", "Created", "Actions"], rows, "Tenants"));
    } catch (error) {
      replace(list, notice("error", errorText(error)));
    }
  }
  function offboardingButton(tenant: Tenant): HTMLElement {
    const button = h("button", { type: "button" }, "Offboarding");
    button.addEventListener("click", () => void showOffboarding(tenant));
    return button;
  }

  const name = h("input", { name: "name", required: true, maxlength: "200" });
  const slug = h("input", { name: "slug", required: true, pattern: "[a-z0-9][a-z0-9\\-]{1,61}[a-z0-9]", maxlength: "63" });
  const plan = h("select", { name: "plan" }, PLANS.map((p) => h("option", { value: p }, p)));
  const admin = h("input", { type: "email", name: "admin_email", required: true, maxlength: "320" });
  const create = h("button", { type: "submit", class: "primary" }, "Create tenant");
  const form = h(
    "form",
    {
      class: "card inline",
      "aria-label": "Create a tenant",
      onsubmit: (event: Event) => {
        event.preventDefault();
        void busy(create, status, async () => {
          const created = await api<Tenant>("tenant_api", "/tenants", {
            method: "POST",
            body: { name: name.value.trim(), slug: slug.value.trim(), plan: plan.value, admin_email: admin.value.trim() },
          });
          for (const input of [name, slug, admin]) input.value = "";
          await load();
          return `${created.name} created: its first admin is invited by mail.`;
        });
      },
    },
    h("h2", {}, "Create a tenant"),
    field("Name", name),
    field("Slug", slug, "lower case letters, digits and dashes"),
    field("Plan", plan),
    field("First admin's e-mail", admin),
    create,
  );
  void load();
  return h("div", { class: "page" }, heading("Tenants"), form, status, list, detail);
}
