import { api } from "../api";
import { h, replace } from "../dom";
import type { Session } from "../session";
import { busy, errorText, notice, statusBox } from "../ui";

interface Preferences {
  channels: Record<string, boolean>;
  categories: Record<string, Record<string, boolean>>;
  email_digest: boolean;
  locale: string;
  categories_available: string[];
  always_on_categories: string[];
  note: string;
}

const CHANNELS: [string, string][] = [
  ["in_app", "In-app"],
  ["email", "E-mail"],
];
const LOCALES: [string, string][] = [
  ["en", "English"],
  ["de", "Deutsch"],
];

/** The caller's own notification preferences: per category and channel, the digest, the language. */
export function preferencesSection(session: Session): HTMLElement {
  const path = `/tenants/${session.tenantId}/notifications/preferences`;
  const box = h("div", {}, h("p", { class: "loading" }, "Loading preferences…"));

  async function load(): Promise<void> {
    let prefs: Preferences;
    try {
      prefs = await api<Preferences>("notification_api", path);
    } catch (error) {
      replace(box, notice("error", errorText(error)));
      return;
    }
    const alwaysOn = new Set(prefs.always_on_categories);
    const boxes: { category: string; channel: string; input: HTMLInputElement }[] = [];
    const rows = prefs.categories_available.map((category) =>
      h(
        "tr",
        {},
        h("th", { scope: "row" }, category, alwaysOn.has(category) ? h("small", {}, " (always on)") : null),
        CHANNELS.map(([channel, label]) => {
          const on = prefs.categories[category]?.[channel] ?? true;
          const input = h("input", {
            type: "checkbox",
            checked: on || alwaysOn.has(category),
            disabled: alwaysOn.has(category),
            "aria-label": `${label} notifications about ${category}`,
          });
          boxes.push({ category, channel, input });
          return h("td", {}, input);
        }),
      ),
    );
    const digest = h("input", { type: "checkbox", checked: prefs.email_digest, id: "pref-digest" });
    const locale = h("select", { id: "pref-locale" }, LOCALES.map(([value, label]) => h("option", { value, selected: value === prefs.locale }, label)));
    const save = h("button", { type: "submit", class: "primary" }, "Save preferences");
    const status = statusBox();
    replace(
      box,
      h(
        "form",
        {
          class: "card",
          onsubmit: (event: Event) => {
            event.preventDefault();
            void busy(save, status, async () => {
              const categories: Record<string, Record<string, boolean>> = {};
              for (const { category, channel, input } of boxes) {
                if (alwaysOn.has(category)) continue;
                (categories[category] ??= {})[channel] = input.checked;
              }
              await api("notification_api", path, {
                method: "PUT",
                body: { channels: prefs.channels, categories, email_digest: digest.checked, locale: locale.value },
              });
              return "Preferences saved.";
            });
          },
        },
        h("h2", {}, "Preferences"),
        h("p", {}, prefs.note),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "matrix" },
            h("caption", { class: "visually-hidden" }, "Notification channels per category"),
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Category"), CHANNELS.map(([, label]) => h("th", { scope: "col" }, label)))),
            h("tbody", {}, rows),
          ),
        ),
        h("div", { class: "check" }, digest, h("label", { for: "pref-digest" }, "Gather low-priority e-mails into a digest")),
        h("div", { class: "field" }, h("label", { for: "pref-locale" }, "Language of e-mails"), locale),
        save,
        status,
      ),
    );
  }
  void load();
  return box;
}
