import { api, type Page } from "../api";
import { field, formatTime, h, replace } from "../dom";
import type { Session } from "../session";
import { busy, errorText, heading, notice, statusBox, table } from "../ui";

interface User {
  id: string;
  email: string;
  display_name: string | null;
  role: string;
  status: string;
  created_at: string;
  version: number;
}

const ROLES = ["viewer", "member", "admin", "owner"];

function roleSelect(value: string, label: string): HTMLSelectElement {
  const select = h("select", { "aria-label": label }, ROLES.map((r) => h("option", { value: r, selected: r === value }, r)));
  select.value = value;
  return select;
}

export function usersPage(session: Session): HTMLElement {
  const base = `/tenants/${session.tenantId}`;
  const canManage = session.perms.can("users:manage");
  const status = statusBox();
  const list = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const search = h("input", { type: "search", name: "q", placeholder: "e-mail starts with…" });

  async function load(): Promise<void> {
    try {
      const q = search.value.trim().toLowerCase();
      const page = await api<Page<User>>("user_management_api", `${base}/users?limit=100${q ? `&q=${encodeURIComponent(q)}` : ""}`);
      if (page.items.length === 0) {
        replace(list, h("p", { class: "empty" }, q ? "No user matches." : "No users yet: invite the first one above."));
        return;
      }
      const rows = page.items.map((user) => {
        const actions: HTMLElement[] = [];
        if (canManage && user.id !== session.user.uid) {
          const role = roleSelect(user.role, `Role of ${user.email}`);
          const save = h("button", { type: "button" }, "Change role");
          save.addEventListener("click", () =>
            busy(save, status, async () => {
              await api("user_management_api", `${base}/users/${user.id}`, {
                method: "PATCH",
                body: { role: role.value },
                headers: { "If-Match": `"${user.version}"` },
              });
              await load();
              return `${user.email} is now ${role.value}.`;
            }),
          );
          actions.push(role, save);
          if (user.status === "active") {
            const off = h("button", { type: "button", class: "danger" }, "Deactivate");
            off.addEventListener("click", () =>
              busy(off, status, async () => {
                if (!window.confirm(`Deactivate ${user.email}? They are signed out at once.`)) return;
                await api("user_management_api", `${base}/users/${user.id}/deactivate`, { method: "POST", body: {} });
                await load();
                return `${user.email} is deactivated.`;
              }),
            );
            actions.push(off);
          } else if (user.status === "deactivated") {
            const on = h("button", { type: "button" }, "Reactivate");
            on.addEventListener("click", () =>
              busy(on, status, async () => {
                await api("user_management_api", `${base}/users/${user.id}/reactivate`, { method: "POST" });
                await load();
                return `${user.email} is active again.`;
              }),
            );
            actions.push(on);
          }
        }
        return h(
          "tr",
          { "data-testid": "user-row" },
          h("td", {}, user.email),
          h("td", {}, user.display_name ?? "—"),
          h("td", {}, user.role),
          h("td", {}, user.status),
          h("td", {}, formatTime(user.created_at)),
          canManage ? h("td", { class: "actions" }, actions) : null,
        );
      });
      const headers = ["E-mail", "Name", "Role", "Status", "Since", ...(canManage ? ["Actions"] : [])];
      replace(list, table(headers, rows, "Users of the workspace"));
    } catch (error) {
      replace(list, notice("error", errorText(error)));
    }
  }

  let invite: HTMLElement | null = null;
  if (session.perms.can("users:invite")) {
    const email = h("input", { type: "email", name: "email", required: true, autocomplete: "off" });
    const role = roleSelect("member", "Role");
    role.removeAttribute("aria-label");
    const send = h("button", { type: "submit", class: "primary" }, "Send invitation");
    invite = h(
      "form",
      {
        class: "card inline",
        onsubmit: (event: Event) => {
          event.preventDefault();
          void busy(send, status, async () => {
            await api("user_management_api", `${base}/invitations`, { method: "POST", body: { email: email.value.trim(), role: role.value } });
            const sent = email.value.trim();
            email.value = "";
            await load();
            return `Invitation sent to ${sent}: the mail carries a link to set a password.`;
          });
        },
      },
      h("h2", {}, "Invite a user"),
      field("E-mail", email),
      field("Role", role),
      send,
    );
  }
  const searchForm = h(
    "form",
    { class: "toolbar", role: "search", onsubmit: (e: Event) => { e.preventDefault(); void load(); } },
    field("Search users", search),
    h("button", { type: "submit" }, "Search"),
  );
  void load();
  return h("div", { class: "page" }, heading("Users"), invite, status, searchForm, list);
}
