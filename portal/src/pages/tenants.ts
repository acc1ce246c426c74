import { api, type Page } from "../api";
import { field, formatTime, h, replace } from "../dom";
import { busy, errorText, heading, notice, statusBox, table } from "../ui";

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

export function tenantsPage(): HTMLElement {
  const list = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const status = statusBox();

  function action(tenant: Tenant, verb: "suspend" | "reactivate", label: string): HTMLElement {
    const reason = h("input", { name: "reason", required: true, maxlength: "500" });
    const button = h("button", { type: "submit", class: verb === "suspend" ? "danger" : "" }, label);
    return h(
      "form",
      {
        class: "inline-action",
        onsubmit: (event: Event) => {
          event.preventDefault();
          void busy(button, status, async () => {
            await api("tenant_api", `/tenants/${tenant.id}/${verb}`, { method: "POST", body: { reason: reason.value.trim() } });
            await load();
            return `${tenant.name} is ${verb === "suspend" ? "suspended" : "active again"}.`;
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
          ),
        ),
      );
      replace(list, table(["Tenant", "Plan", "Status", "Seats", "Created", "Actions"], rows, "Tenants"));
    } catch (error) {
      replace(list, notice("error", errorText(error)));
    }
  }
  void load();
  return h("div", { class: "page" }, heading("Tenants"), status, list);
}
