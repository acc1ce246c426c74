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
  status?: string;
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

function eventBoxes(checked: string[]): HTMLInputElement[] {
  return WEBHOOK_EVENTS.map((name) =>
    h("input", { type: "checkbox", name: "event_types", value: name, checked: checked.includes(name) }),
  );
}

function eventsFieldset(boxes: HTMLInputElement[]): HTMLElement {
  return h(
    "fieldset",
    { class: "events" },
    h("legend", {}, "Events to send"),
    boxes.map((box) => h("label", { class: "check" }, box, ` ${box.value}`)),
  );
}

export function webhooksPage(session: Session): HTMLElement {
  const base = `/tenants/${session.tenantId}/webhooks`;
  const canManage = session.perms.can("webhooks:manage");
  const status = statusBox();
  const secretBox = h("div", { "aria-live": "polite" });
  const list = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const log = h("div", { "aria-live": "polite" });
  const editor = h("div", {});

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

  function replaySinceForm(endpoint: Endpoint, logStatus: HTMLElement): HTMLElement {
    // A day back by default, in the browser's local time as datetime-local shows it.
    const dayAgo = new Date(Date.now() - 86_400_000 - new Date().getTimezoneOffset() * 60_000);
    const since = h("input", { type: "datetime-local", name: "since", required: true, value: dayAgo.toISOString().slice(0, 16) });
    const replayAll = h("button", { type: "submit" }, "Replay failed");
    return h(
      "form",
      {
        class: "inline-action",
        "aria-label": "Replay failed deliveries",
        onsubmit: (event: Event) => {
          event.preventDefault();
          void busy(replayAll, logStatus, async () => {
            const answer = await api<{ replayed: string[] }>("integration_api", `${base}/endpoints/${endpoint.id}/replay`, {
              method: "POST",
              body: { since: new Date(since.value).toISOString() },
            });
            const count = answer.replayed.length;
            return count === 0
              ? "No failed deliveries since then."
              : `${count} failed ${count === 1 ? "delivery" : "deliveries"} queued again.`;
          });
        },
      },
      field("Failed since", since),
      replayAll,
    );
  }

  function editForm(endpoint: Endpoint): HTMLElement {
    const url = h("input", { type: "url", name: "url", required: true, value: endpoint.url });
    const description = h("input", { name: "description", maxlength: "500", value: endpoint.description ?? "" });
    const boxes = eventBoxes(endpoint.event_types);
    const save = h("button", { type: "submit", class: "primary" }, "Save endpoint");
    const cancel = h("button", { type: "button" }, "Cancel");
    cancel.addEventListener("click", () => replace(editor));
    return h(
      "form",
      {
        class: "card",
        "aria-label": "Edit endpoint",
        onsubmit: (event: Event) => {
          event.preventDefault();
          void busy(save, status, async () => {
            const updated = await api<Endpoint>("integration_api", `${base}/endpoints/${endpoint.id}`, {
              method: "PATCH",
              body: {
                url: url.value.trim(),
                description: description.value.trim() || null,
                event_types: boxes.filter((b) => b.checked).map((b) => b.value),
              },
            });
            replace(editor);
            await load();
            return `Endpoint ${updated.url} saved.`;
          });
        },
      },
      h("h2", {}, `Edit ${endpoint.url}`),
      field("URL", url),
      field("Description", description),
      eventsFieldset(boxes),
      h("div", { class: "toolbar" }, save, cancel),
    );
  }

  function endpointActions(e: Endpoint): HTMLElement[] {
    const edit = h("button", { type: "button" }, "Edit");
    edit.addEventListener("click", () => {
      replace(editor, editForm(e));
      (editor.querySelector("input") as HTMLInputElement | null)?.focus();
    });
    const toggle = h("button", { type: "button", class: e.enabled ? "danger" : undefined }, e.enabled ? "Disable" : "Enable");
    toggle.addEventListener("click", () =>
      busy(toggle, status, async () => {
        await api("integration_api", `${base}/endpoints/${e.id}`, { method: "PATCH", body: { enabled: !e.enabled } });
        await load();
        return `Endpoint ${e.url} ${e.enabled ? "disabled" : "enabled"}.`;
      }),
    );
    const rotate = h("button", { type: "button" }, "Rotate secret");
    rotate.addEventListener("click", () => {
      if (!confirm(`Rotate the signing secret of ${e.url}? Your receiver needs the new one.`)) return;
      void busy(rotate, status, async () => {
        const rotated = await api<Endpoint & { secret: string }>("integration_api", `${base}/endpoints/${e.id}/rotate-secret`, {
          method: "POST",
          body: {},
        });
        showSecret(rotated.secret);
        return `A new signing secret for ${e.url}.`;
      });
    });
    return [edit, toggle, rotate];
  }

  async function showLog(endpoint: Endpoint): Promise<void> {
    replace(log, h("p", { class: "loading" }, "Loading deliveries…"));
    try {
      const page = await api<Page<Message>>("integration_api", `${base}/endpoints/${endpoint.id}/messages?limit=50`);
      const logStatus = statusBox();
      const rows = page.items.map((m) => {
        const more = h("button", { type: "button" }, "Attempts");
        const replayOne = h("button", { type: "button" }, "Replay");
        replayOne.addEventListener("click", () =>
          busy(replayOne, logStatus, async () => {
            await api("integration_api", `${base}/messages/${m.id}/replay`, { method: "POST", body: {} });
            return `Replay of ${m.event_name} queued: refresh the deliveries to follow it.`;
          }),
        );
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
          h("td", { class: "actions" }, more, canManage && m.status === "failed" ? replayOne : null),
          detail,
        );
      });
      const refresh = h("button", { type: "button" }, "Refresh deliveries");
      refresh.addEventListener("click", () => void showLog(endpoint));
      replace(
        log,
        h("h2", {}, `Deliveries to ${endpoint.url}`),
        h("div", { class: "toolbar" }, refresh),
        canManage ? replaySinceForm(endpoint, logStatus) : null,
        logStatus,
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
          h(
            "td",
            {},
            e.enabled ? (e.status === "failing" ? "enabled, failing" : "enabled") : `disabled${e.disabled_reason ? ` (${e.disabled_reason})` : ""}`,
          ),
          h("td", { class: "actions" }, deliveries, canManage ? endpointActions(e) : null),
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
    const boxes = eventBoxes([]);
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
      eventsFieldset(boxes),
      create,
    );
  }
  void load();
  return h("div", { class: "page" }, heading("Webhooks"), form, status, secretBox, editor, list, log);
}
