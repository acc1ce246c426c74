import { api, type Page } from "../api";
import { field, formatTime, h, replace } from "../dom";
import { busy, errorText, heading, notice, statusBox, table } from "../ui";

interface ParkedRecord {
  id: string;
  api: string | null;
  type?: string | null;
  tenant_id?: string | null;
  failure?: string | null;
  error?: string | null;
  reason?: string | null;
  attempts?: number | null;
  parked_at?: string;
  received_at?: string;
}

const KINDS = [
  { kind: "dead-letters", title: "Dead letters", empty: "No dead letters: every delivery was handled." },
  { kind: "quarantine", title: "Quarantine", empty: "Nothing quarantined: every message was readable." },
] as const;

/** Dead letters and quarantined messages of every API, for operators: re-drive or discard with a reason. */
export function operationsPage(): HTMLElement {
  const status = statusBox();
  const sections = KINDS.map(({ kind, title, empty }) => {
    const list = h("div", {}, h("p", { class: "loading" }, "Loading…"));

    async function load(): Promise<void> {
      try {
        const page = await api<Page<ParkedRecord>>("operations_api", `/operations/${kind}?limit=100`);
        if (page.items.length === 0) {
          replace(list, h("p", { class: "empty" }, empty));
          return;
        }
        const rows = page.items.map((record) => {
          const reason = h("input", { name: "reason", required: true, minlength: "3", maxlength: "1000" });
          const discard = h("button", { type: "submit", class: "danger" }, "Discard");
          const discardForm = h(
            "form",
            {
              class: "inline-action",
              onsubmit: (event: Event) => {
                event.preventDefault();
                void busy(discard, status, async () => {
                  await api("operations_api", `/operations/${kind}/${encodeURIComponent(record.id)}/discard`, {
                    method: "POST",
                    body: { reason: reason.value.trim() },
                  });
                  await load();
                  return `${record.id} discarded; the reason is in the platform trail.`;
                });
              },
            },
            field(`Reason to discard ${record.id}`, reason),
            discard,
          );
          const redrive = h("button", { type: "button", class: "primary" }, "Re-drive");
          redrive.addEventListener("click", () =>
            busy(redrive, status, async () => {
              await api("operations_api", `/operations/dead-letters/${encodeURIComponent(record.id)}/redrive`, {
                method: "POST",
                body: {},
              });
              await load();
              return `${record.id} re-driven to ${record.api ?? "its API"}.`;
            }),
          );
          return h(
            "tr",
            { "data-testid": `${kind}-record` },
            h("td", {}, record.api ?? "—", h("br", {}), h("small", {}, record.id)),
            h("td", {}, record.type ?? record.reason ?? "—", record.tenant_id ? h("small", {}, ` · ${record.tenant_id}`) : null),
            h("td", {}, [record.failure, record.error].filter(Boolean).join(": ") || "—", record.attempts ? ` (${record.attempts} attempts)` : ""),
            h("td", {}, formatTime(record.parked_at ?? record.received_at)),
            h("td", { class: "actions" }, kind === "dead-letters" ? redrive : null, discardForm),
          );
        });
        replace(list, table(["API", "Message", "Failure", "When", "Actions"], rows, title));
      } catch (error) {
        replace(list, notice("error", errorText(error)));
      }
    }
    void load();
    return h("section", { "aria-labelledby": `${kind}-heading` }, h("h2", { id: `${kind}-heading` }, title), list);
  });
  return h("div", { class: "page" }, heading("Operations"), status, sections);
}
