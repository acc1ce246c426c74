import { api, type Page } from "../api";
import { formatTime, h, replace } from "../dom";
import { ApiError, tenantBlock } from "../problem";
import { settledSteps } from "../progress";
import type { Session } from "../session";
import { errorText, heading, notice } from "../ui";

interface Tenant {
  id: string;
  name: string;
  slug: string;
  plan: string;
  seat_limit: number;
  seats_used: number;
  status: string;
  status_reason: string | null;
  past_due: boolean;
}
interface Checklist {
  status: string;
  items: { name: string; status: string; note: string | null }[];
}
interface Health {
  score: number | null;
  grade: string | null;
  previous_score: number | null;
}
interface Alert {
  id: string;
  rule_name: string;
  severity: string;
  summary: string;
  raised_at: string;
}

function card(title: string, ...body: (Node | string | null)[]): HTMLElement {
  return h("section", { class: "card" }, h("h2", {}, title), ...body);
}

function failed(error: unknown): HTMLElement {
  if (error instanceof ApiError && error.status === 404) return notice("info", "Nothing yet.");
  return notice("error", errorText(error));
}

export function tenantBanner(tenant: Tenant | null, block: string | null): HTMLElement | null {
  if (block) {
    return h(
      "div",
      { class: "banner", role: "alert", "data-testid": "tenant-banner" },
      `This workspace is ${block}. Its data cannot be used until a platform operator reactivates it.`,
    );
  }
  if (tenant && tenant.status !== "active") {
    const why = tenant.status_reason ? ` (${tenant.status_reason})` : "";
    return h("div", { class: "banner", role: "alert", "data-testid": "tenant-banner" }, `This workspace is ${tenant.status}${why}.`);
  }
  if (tenant?.past_due) {
    return h("div", { class: "banner warn", role: "alert", "data-testid": "tenant-banner" }, "Payment is past due: update the billing details to avoid a suspension.");
  }
  return null;
}

export function dashboardPage(session: Session): HTMLElement {
  const root = h("div", { class: "page" }, heading("Dashboard"), h("p", { class: "loading" }, "Loading…"));
  const tid = session.tenantId as string;
  const can = (p: string) => session.perms.can(p);
  const skip = Promise.resolve(null);
  void Promise.allSettled([
    api<Tenant>("tenant_api", `/tenants/${tid}`),
    can("onboarding:read") ? api<Checklist>("onboarding_api", `/tenants/${tid}/onboarding/checklist`) : skip,
    can("health:read") ? api<Health>("customer_health_api", `/tenants/${tid}/health`) : skip,
    can("audit-alerts:read") ? api<Page<Alert>>("audit_api", `/tenants/${tid}/audit/alerts?limit=5`) : skip,
  ]).then(([tenantR, checklistR, healthR, alertsR]) => {
    const tenant = tenantR.status === "fulfilled" ? tenantR.value : null;
    const block = tenantR.status === "rejected" ? tenantBlock(tenantR.reason) : null;
    const cards: HTMLElement[] = [];
    if (tenant) {
      const pct = tenant.seat_limit ? Math.round((tenant.seats_used / tenant.seat_limit) * 100) : 0;
      cards.push(
        card(
          "Workspace",
          h(
            "dl",
            {},
            h("dt", {}, "Name"),
            h("dd", {}, tenant.name),
            h("dt", {}, "Status"),
            h("dd", { "data-testid": "tenant-status" }, tenant.status),
            h("dt", {}, "Plan"),
            h("dd", {}, tenant.plan),
            h("dt", {}, "Seats"),
            h("dd", { "data-testid": "seats" }, `${tenant.seats_used} of ${tenant.seat_limit} used`),
          ),
          h("progress", { max: "100", value: String(pct), "aria-label": "Seats used" }),
        ),
      );
    } else if (!block && tenantR.status === "rejected") {
      cards.push(card("Workspace", failed(tenantR.reason)));
    }
    if (!block) {
      if (checklistR.status === "fulfilled" && checklistR.value) {
        const items = checklistR.value.items;
        const done = settledSteps(items);
        cards.push(
          card(
            "Onboarding",
            h("p", {}, `${done} of ${items.length} steps done (${checklistR.value.status}).`),
            h("progress", { max: String(items.length || 1), value: String(done), "aria-label": "Onboarding progress" }),
            h(
              "ol",
              { class: "checklist" },
              items.map((item) =>
                h("li", { class: `step ${item.status}` }, h("span", {}, item.name.replaceAll("_", " ")), " ", h("small", {}, item.status), item.note ? h("small", {}, ` · ${item.note}`) : null),
              ),
            ),
          ),
        );
      } else if (checklistR.status === "rejected") {
        cards.push(card("Onboarding", failed(checklistR.reason)));
      }
      if (healthR.status === "fulfilled" && healthR.value) {
        const health = healthR.value;
        const trend =
          health.previous_score === null || health.score === null
            ? ""
            : health.score >= health.previous_score
              ? ` (up from ${health.previous_score})`
              : ` (down from ${health.previous_score})`;
        cards.push(
          card(
            "Customer health",
            health.score === null
              ? notice("info", "No score yet: it appears once customers have activity.")
              : h("div", {}, h("p", { class: "big" }, `${health.score}`), h("p", {}, `Grade ${health.grade ?? "—"}${trend}`)),
          ),
        );
      } else if (healthR.status === "rejected") {
        cards.push(card("Customer health", failed(healthR.reason)));
      }
      if (alertsR.status === "fulfilled" && alertsR.value) {
        const alerts = alertsR.value.items;
        cards.push(
          card(
            "Latest alerts",
            alerts.length === 0
              ? h("p", {}, "No alerts. Alert rules on the audit trail raise them.")
              : h(
                  "ul",
                  { class: "alerts" },
                  alerts.map((a) =>
                    h("li", {}, h("strong", {}, `${a.severity} · ${a.rule_name}`), h("br", {}), a.summary, h("br", {}), h("small", {}, formatTime(a.raised_at))),
                  ),
                ),
          ),
        );
      } else if (alertsR.status === "rejected") {
        cards.push(card("Latest alerts", failed(alertsR.reason)));
      }
    }
    replace(root, heading(tenant ? tenant.name : "Dashboard"), tenantBanner(tenant, block), h("div", { class: "grid" }, cards));
  });
  return root;
}
