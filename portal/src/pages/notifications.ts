import { api, type Page } from "../api";
import { refreshBadge } from "../badge";
import { formatTime, h, replace } from "../dom";
import { tenantBlock } from "../problem";
import type { Session } from "../session";
import { preferencesSection } from "./preferences";
import { busy, errorText, heading, notice, statusBox } from "../ui";

interface Notification {
  id: string;
  event_name: string;
  category: string;
  subject: string;
  body: string;
  read: boolean;
  created_at: string;
}

export function notificationsPage(session: Session): HTMLElement {
  const base = `/tenants/${session.tenantId}/notifications/inbox`;
  const list = h("div", { "aria-live": "polite" }, h("p", { class: "loading" }, "Loading…"));
  const status = statusBox();
  const allRead = h("button", { type: "button" }, "Mark all read");
  allRead.addEventListener("click", () =>
    busy(allRead, status, async () => {
      await api("notification_api", `${base}/read-all`, { method: "POST" });
      await load();
      return "Everything is read.";
    }),
  );

  async function load(): Promise<void> {
    try {
      const page = await api<Page<Notification>>("notification_api", `${base}?limit=50`);
      void refreshBadge();
      if (page.items.length === 0) {
        replace(list, h("p", { class: "empty" }, "No notifications yet. Events in your workspace (new users, imports, alerts) appear here."));
        return;
      }
      replace(
        list,
        h(
          "ul",
          { class: "inbox" },
          page.items.map((item) => {
            const mark = h("button", { type: "button" }, "Mark read");
            mark.addEventListener("click", () =>
              busy(mark, status, async () => {
                await api("notification_api", `${base}/${encodeURIComponent(item.id)}/read`, { method: "POST" });
                await load();
              }),
            );
            return h(
              "li",
              { class: item.read ? "read" : "unread", "data-testid": "notification" },
              h("div", {}, h("strong", {}, item.subject), item.read ? null : h("span", { class: "pill" }, "new")),
              h("p", {}, item.body),
              h("small", {}, `${item.event_name} · ${formatTime(item.created_at)}`),
              item.read ? null : mark,
            );
          }),
        ),
      );
    } catch (error) {
      const block = tenantBlock(error);
      replace(list, notice("error", block ? `This workspace is ${block}.` : errorText(error)));
    }
  }
  void load();
  return h(
    "div",
    { class: "page" },
    heading("Notifications"),
    h("div", { class: "toolbar" }, allRead),
    status,
    list,
    preferencesSection(session),
  );
}
