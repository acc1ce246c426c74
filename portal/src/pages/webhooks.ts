import catalog from "../../../schemas/catalog.json";
import { api, type Page } from "../api";
import { field, formatTime, h, replace } from "../dom";
import type { Session } from "../session";
import { busy, errorText, heading, notice, statusBox, table } from "../ui";

interface Endpoint {
  id: string;
  url: string;
  description: string | null;
  event_types: string[];
  enabled: boolean;
  disabled_reason?: string | null;
}
interface Message {
  id: string;
  event_name: string;
  status: string;
  attempts_total: number;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
}
interface Attempt {
  attempt: number;
  status_code: number | null;
  error: string | null;
  started_at?: string;
  duration_ms?: number;
}

/** The events an endpoint can subscribe to: those the catalog routes to the Integration API. */
export const WEBHOOK_EVENTS: string[] = catalog.events
  .filter((event) => event.subscribers.includes("Integration API"))
  .map((event) => event.name)
  .sort();

export function webhooksPage(session: Session): HTMLElement {
  const base = `/tenants/${session.tenantId}/webhooks`;
  const canManage = session.perms.can("webhooks:manage");
  const status = statusBox();
  const secretBox = h("div", { "aria-live": "polite" });
  const list = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const log = h("div", { "aria-live": "polite" });

  function showSecret(secret: string): void {
    const copy = h("button", { type: "button" }, "Copy secret");
    const copied = statusBox();
    copy.addEventListener("click", () =>
      busy(copy, copied, async () => {
        await navigator.clipboard.writeText(secret);
        return "Copied.";
      }),
    );
    replace(
      secretBox,
      h(
        "div",
        { class: "card secret", "data-testid": "endpoint-secret" },
        h("h2", {}, "Signing secret"),
        h("p", {}, "Shown once: store it now. Your receiver verifies every delivery's webhook-signature with it."),
        h("code", {}, secret),
        h("div", { class: "toolbar" }, copy),
        copied,
      ),
    );
  }

  async function showLog(endpoint: Endpoint): Promise<void> {
    replace(log, h("p", { class: "loading" }, "Loading deliveries…"));
    try {
      const page = await api<Page<Message>>("integration_api", `${base}/endpoints/${endpoint.id}/messages?limit=50`);
      const rows = page.items.map((m) => {
        const more = h("button", { type: "button" }, "Attempts");
        const detail = h("td", {});
        more.addEventListener("click", async () => {
          try {
            const full = await api<Message & { attempts: Attempt[] }>("integration_api", `${base}/messages/${m.id}`);
            replace(
              detail,
              h(
                "ol",
                {},
                full.attempts.map((a) =>
                  h("li", {}, `${a.status_code ?? "no answer"}${a.error ? ` · ${a.error}` : ""}${a.started_at ? ` · ${formatTime(a.started_at)}` : ""}`),
                ),
              ),
            );
          } catch (error) {
            replace(detail, notice("error", errorText(error)));
          }
        });
        return h(
          "tr",
          { "data-testid": "delivery" },
          h("td", {}, m.event_name),
          h("td", {}, m.status),
          h("td", {}, String(m.attempts_total), m.last_status_code ? ` (last ${m.last_status_code})` : ""),
          h("td", {}, formatTime(m.created_at)),
          h("td", {}, more),
          detail,
        );
      });
      replace(
        log,
        h("h2", {}, `Deliveries to ${endpoint.url}`),
        rows.length === 0
          ? h("p", { class: "empty" }, "No deliveries yet: they appear when a subscribed event happens.")
          : table(["Event", "Status", "Attempts", "Created", "", "Attempt log"], rows, "Deliveries"),
      );
    } catch (error) {
      replace(log, notice("error", errorText(error)));
    }
  }

  async function load(): Promise<void> {
    try {
      const page = await api<Page<Endpoint>>("integration_api", `${base}/endpoints?limit=100`);
      if (page.items.length === 0) {
        replace(list, h("p", { class: "empty" }, canManage ? "No endpoints yet: add one above." : "No endpoints yet."));
        return;
      }
      const rows = page.items.map((e) => {
        const deliveries = h("button", { type: "button" }, "Deliveries");
        deliveries.addEventListener("click", () => void showLog(e));
        return h(
          "tr",
          { "data-testid": "endpoint" },
          h("td", {}, e.url, e.description ? h("br", {}) : null, e.description ? h("small", {}, e.description) : null),
          h("td", {}, e.event_types.join(", ")),
          h("td", {}, e.enabled ? "enabled" : `disabled${e.disabled_reason ? ` (${e.disabled_reason})` : ""}`),
          h("td", { class: "actions" }, deliveries),
        );
      });
      replace(list, table(["URL", "Events", "State", "Actions"], rows, "Webhook endpoints"));
    } catch (error) {
      replace(list, notice("error", errorText(error)));
    }
  }

  let form: HTMLElement | null = null;
  if (canManage) {
    const url = h("input", { type: "url", name: "url", required: true, placeholder: "https://example.com/webhooks" });
    const description = h("input", { name: "description", maxlength: "500" });
    const boxes = WEBHOOK_EVENTS.map((name) => h("input", { type: "checkbox", name: "event_types", value: name }));
    const create = h("button", { type: "submit", class: "primary" }, "Add endpoint");
    form = h(
      "form",
      {
        class: "card",
        onsubmit: (event: Event) => {
          event.preventDefault();
          void busy(create, status, async () => {
            const types = boxes.filter((b) => b.checked).map((b) => b.value);
            const created = await api<Endpoint & { secret: string }>("integration_api", `${base}/endpoints`, {
              method: "POST",
              body: { url: url.value.trim(), description: description.value.trim() || null, event_types: types },
            });
            showSecret(created.secret);
            url.value = "";
            description.value = "";
            for (const box of boxes) box.checked = false;
            await load();
            return `Endpoint ${created.url} added.`;
          });
        },
      },
      h("h2", {}, "Add an endpoint"),
      field("URL", url),
      field("Description", description),
      h(
        "fieldset",
        { class: "events" },
        h("legend", {}, "Events to send"),
        boxes.map((box, i) => h("label", { class: "check" }, box, ` ${WEBHOOK_EVENTS[i]}`)),
      ),
      create,
    );
  }
  void load();
  return h("div", { class: "page" }, heading("Webhooks"), form, status, secretBox, list, log);
}
