// The frame of every signed-in screen: header, a menu that follows the caller's permissions, the
// unread badge and sign-out.
import { attachBadge } from "./badge";
import { h } from "./dom";
import type { Session } from "./session";

export interface MenuEntry {
  path: string;
  label: string;
  allowed: (session: Session) => boolean;
}

export const MENU: MenuEntry[] = [
  { path: "/", label: "Dashboard", allowed: (s) => s.tenantId !== null && s.perms.can("tenants:read") },
  { path: "/notifications", label: "Notifications", allowed: (s) => s.tenantId !== null && s.perms.can("notifications:read") },
  { path: "/users", label: "Users", allowed: (s) => s.tenantId !== null && s.perms.can("users:read") },
  { path: "/customers", label: "Customers", allowed: (s) => s.tenantId !== null && s.perms.can("customers:read") },
  { path: "/health", label: "Health", allowed: (s) => s.tenantId !== null && s.perms.can("health:read") },
  {
    path: "/audit",
    label: "Audit",
    allowed: (s) => s.tenantId !== null && (s.perms.can("audit:read") || s.perms.can("audit:verify")),
  },
  { path: "/webhooks", label: "Webhooks", allowed: (s) => s.tenantId !== null && s.perms.can("webhooks:read") },
  { path: "/workflows", label: "Workflows", allowed: (s) => s.tenantId !== null && s.perms.can("workflows:read") },
  { path: "/operator/tenants", label: "Tenants", allowed: (s) => s.perms.operator },
  { path: "/operator/operations", label: "Operations", allowed: (s) => s.perms.operator },
];

export function shell(session: Session, current: string, content: HTMLElement, onSignOut: () => void): HTMLElement {
  const badge = h("span", { class: "badge", hidden: true, "data-testid": "unread-badge" });
  const nav = h(
    "nav",
    { "aria-label": "Main" },
    h(
      "ul",
      {},
      MENU.filter((entry) => entry.allowed(session)).map((entry) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: `#${entry.path}`, "aria-current": entry.path === current ? "page" : undefined },
            entry.label,
            entry.path === "/notifications" ? [" ", badge] : null,
          ),
        ),
      ),
    ),
  );
  const who = session.claims.email ?? session.user.uid;
  const header = h(
    "header",
    { class: "top" },
    h("a", { class: "brand", href: "#/" }, "Customer Management"),
    nav,
    h(
      "div",
      { class: "who" },
      h("span", { class: "email" }, who, session.perms.operator ? " (operator)" : ""),
      h("button", { type: "button", onclick: onSignOut }, "Sign out"),
    ),
  );
  if (session.tenantId && session.perms.can("notifications:read")) attachBadge(badge);
  return h("div", { class: "frame" }, header, h("main", { id: "main" }, content));
}
