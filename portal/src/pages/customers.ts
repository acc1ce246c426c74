import { api, type Page } from "../api";
import { field, formatTime, h, replace } from "../dom";
import type { Session } from "../session";
import { busy, errorText, heading, notice, statusBox, table } from "../ui";

interface Contact {
  id: string;
  first_name: string | null;
  last_name: string | null;
  emails: string[];
  phones?: string[];
  job_title: string | null;
  organization_id: string | null;
  lifecycle_stage?: string | null;
  source?: string | null;
  created_at: string;
  updated_at: string;
}
interface Organization {
  id: string;
  name: string;
  domains: string[];
  created_at: string;
}
interface ImportJob {
  id: string;
  status: "queued" | "running" | "completed" | "reverting" | "reverted";
  total: number;
  processed: number;
  created: number;
  updated: number;
  unchanged: number;
  skipped: number;
  failed: number;
  reverted: number;
  chunk_count: number;
  chunks_reverted: number;
}
interface ImportRow {
  row: number;
  status: string;
  reason?: string | null;
  errors?: unknown;
}

const POLL_MS = 1000;

function contactName(c: Contact): string {
  return [c.first_name, c.last_name].filter(Boolean).join(" ") || "(no name)";
}

export function customersPage(session: Session): HTMLElement {
  const base = `/tenants/${session.tenantId}`;
  const status = statusBox();
  const contacts = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const organizations = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const detail = h("div", { "aria-live": "polite" });
  const progressBox = h("div", { "aria-live": "polite" });
  const search = h("input", { type: "search", name: "name", placeholder: "Name starts with…" });

  function showContact(c: Contact): void {
    const rows: [string, string][] = [
      ["Name", contactName(c)],
      ["E-mails", c.emails.join(", ") || "—"],
      ["Phones", (c.phones ?? []).join(", ") || "—"],
      ["Job title", c.job_title ?? "—"],
      ["Organization", c.organization_id ?? "—"],
      ["Lifecycle stage", c.lifecycle_stage ?? "—"],
      ["Source", c.source ?? "—"],
      ["Created", formatTime(c.created_at)],
      ["Updated", formatTime(c.updated_at)],
      ["Id", c.id],
    ];
    replace(
      detail,
      h(
        "section",
        { class: "card", "data-testid": "contact-detail" },
        h("h2", {}, contactName(c)),
        h("dl", {}, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      ),
    );
  }

  async function loadContacts(): Promise<void> {
    try {
      const name = search.value.trim();
      const page = await api<Page<Contact>>(
        "customer_data_api",
        `${base}/contacts?limit=50${name ? `&name=${encodeURIComponent(name)}` : ""}`,
      );
      if (page.items.length === 0) {
        replace(contacts, h("p", { class: "empty" }, name ? "No contact matches." : "No contacts yet: import a CSV file above."));
        return;
      }
      const rows = page.items.map((c) => {
        const open = h("button", { type: "button", class: "link" }, contactName(c));
        open.addEventListener("click", async () => {
          try {
            showContact(await api<Contact>("customer_data_api", `${base}/contacts/${c.id}`));
          } catch (error) {
            replace(detail, notice("error", errorText(error)));
          }
        });
        return h("tr", { "data-testid": "contact-row" }, h("td", {}, open), h("td", {}, c.emails.join(", ")), h("td", {}, c.job_title ?? ""));
      });
      replace(contacts, table(["Name", "E-mails", "Job title"], rows, "Contacts"));
    } catch (error) {
      replace(contacts, notice("error", errorText(error)));
    }
  }

  async function loadOrganizations(): Promise<void> {
    try {
      const page = await api<Page<Organization>>("customer_data_api", `${base}/organizations?limit=50`);
      replace(
        organizations,
        page.items.length === 0
          ? h("p", { class: "empty" }, "No organizations yet.")
          : table(
              ["Name", "Domains", "Created"],
              page.items.map((o) => h("tr", {}, h("td", {}, o.name), h("td", {}, o.domains.join(", ")), h("td", {}, formatTime(o.created_at)))),
              "Organizations",
            ),
      );
    } catch (error) {
      replace(organizations, notice("error", errorText(error)));
    }
  }

  /** Poll the job until it settles, showing its progress; the revert button once it completed. */
  async function follow(jobId: string): Promise<void> {
    for (;;) {
      let job: ImportJob;
      try {
        job = await api<ImportJob>("customer_data_api", `${base}/customer-imports/${jobId}`);
      } catch (error) {
        replace(progressBox, notice("error", errorText(error)));
        return;
      }
      const reverting = job.status === "reverting" || job.status === "reverted";
      const value = reverting ? job.chunks_reverted : job.processed;
      const max = reverting ? job.chunk_count : job.total;
      const counts = `${job.created} created, ${job.updated} updated, ${job.unchanged} unchanged, ${job.skipped} skipped, ${job.failed} failed`;
      const parts: (HTMLElement | null)[] = [
        h("h2", {}, reverting ? "Reverting the import" : "Importing contacts"),
        h("progress", { max: String(max || 1), value: String(value), "aria-label": "Import progress" }),
        h(
          "p",
          { "data-testid": "import-status" },
          `${job.status}: ${reverting ? `${job.reverted} rows reverted` : `${job.processed} of ${job.total} rows`} (${counts})`,
        ),
      ];
      if (job.status === "completed" || job.status === "reverted") {
        const rows = await api<Page<ImportRow>>("customer_data_api", `${base}/customer-imports/${jobId}/rows?status=failed&limit=50`).catch(
          () => ({ items: [], next_cursor: null }) as Page<ImportRow>,
        );
        if (rows.items.length) {
          parts.push(h("h3", {}, "Rows that failed"), h("ul", {}, rows.items.map((r) => h("li", {}, `Row ${r.row}: ${r.reason ?? JSON.stringify(r.errors ?? "")}`))));
        }
        if (job.status === "completed" && session.perms.can("customers:import")) {
          const revert = h("button", { type: "button", class: "danger" }, "Revert this import");
          const revertStatus = statusBox();
          revert.addEventListener("click", () =>
            busy(revert, revertStatus, async () => {
              await api("customer_data_api", `${base}/customer-imports/${jobId}/revert`, { method: "POST" });
              void follow(jobId);
            }),
          );
          parts.push(revert, revertStatus);
        }
        replace(progressBox, h("section", { class: "card", "data-testid": "import" }, parts));
        if (job.status === "reverted") detail.replaceChildren(); // the contact shown may be gone
        await loadContacts();
        return;
      }
      replace(progressBox, h("section", { class: "card", "data-testid": "import" }, parts));
      await new Promise((resolve) => window.setTimeout(resolve, POLL_MS));
      if (!progressBox.isConnected) return; // the person left the page
    }
  }

  let importForm: HTMLElement | null = null;
  if (session.perms.can("customers:import")) {
    const file = h("input", { type: "file", name: "file", accept: ".csv,text/csv", required: true });
    const mode = h(
      "select",
      { name: "mode" },
      h("option", { value: "create_only" }, "Create new contacts only"),
      h("option", { value: "create_or_update" }, "Create or update (match by e-mail)"),
      h("option", { value: "update_only" }, "Update existing only"),
    );
    const start = h("button", { type: "submit", class: "primary" }, "Import");
    importForm = h(
      "form",
      {
        class: "card inline",
        onsubmit: (event: Event) => {
          event.preventDefault();
          void busy(start, status, async () => {
            const chosen = file.files?.[0];
            if (!chosen) throw new Error("Choose a CSV file first.");
            const job = await api<ImportJob>("customer_data_api", `${base}/customer-imports?kind=contact&mode=${mode.value}`, {
              method: "POST",
              raw: { text: await chosen.text(), type: "text/csv" },
            });
            file.value = "";
            void follow(job.id);
          });
        },
      },
      h("h2", {}, "Import contacts from CSV"),
      field("CSV file", file, "Columns: first_name, last_name, email, phone, job_title, custom.<field>."),
      field("Mode", mode),
      start,
    );
  }

  void loadContacts();
  void loadOrganizations();
  return h(
    "div",
    { class: "page" },
    heading("Customers"),
    importForm,
    status,
    progressBox,
    h("h2", {}, "Contacts"),
    h("form", { class: "toolbar", role: "search", onsubmit: (e: Event) => { e.preventDefault(); void loadContacts(); } }, field("Search contacts", search), h("button", { type: "submit" }, "Search")),
    contacts,
    detail,
    h("h2", {}, "Organizations"),
    organizations,
  );
}
