import "./style.css";
import { configureApi } from "./api";
import { restoredUser, signOut, startAuth } from "./auth";
import { detachBadge } from "./badge";
import { loadConfig } from "./config";
import { h, replace } from "./dom";
import { acceptPage } from "./pages/accept";
import { auditPage } from "./pages/audit";
import { customersPage } from "./pages/customers";
import { dashboardPage } from "./pages/dashboard";
import { healthPage } from "./pages/health";
import { notificationsPage } from "./pages/notifications";
import { operationsPage } from "./pages/operations";
import { signInPage } from "./pages/signin";
import { tenantsPage } from "./pages/tenants";
import { usersPage } from "./pages/users";
import { webhooksPage } from "./pages/webhooks";
import { workflowsPage } from "./pages/workflows";
import { go, parseHash } from "./router";
import { clearSession, currentSession, establish, type Session } from "./session";
import { MENU, shell } from "./shell";
import { notice } from "./ui";

const app = document.getElementById("app") as HTMLElement;
const RETURN_TO = "cmp.return-to";

const PAGES: Record<string, (session: Session) => HTMLElement> = {
  "/": dashboardPage,
  "/notifications": notificationsPage,
  "/users": usersPage,
  "/customers": customersPage,
  "/health": healthPage,
  "/audit": auditPage,
  "/webhooks": webhooksPage,
  "/workflows": workflowsPage,
  "/operator/tenants": () => tenantsPage(),
  "/operator/operations": () => operationsPage(),
};

function home(session: Session): string {
  return MENU.find((entry) => entry.allowed(session))?.path ?? "/";
}

async function afterSignIn(): Promise<void> {
  const user = await restoredUser();
  if (!user) return;
  await establish(user);
  const back = sessionStorage.getItem(RETURN_TO);
  sessionStorage.removeItem(RETURN_TO);
  go(back ?? "/");
}

async function leave(message?: string): Promise<void> {
  detachBadge();
  clearSession();
  await signOut();
  replace(app, signInPage(() => void afterSignIn(), message));
}

function sessionExpired(): void {
  // Come back to the same screen after signing in again.
  const route = parseHash(location.hash).path;
  if (route !== "/sign-in" && route !== "/accept") sessionStorage.setItem(RETURN_TO, route);
  void leave("Your session ended: sign in again to continue.");
}

function render(): void {
  const route = parseHash(location.hash);
  detachBadge();
  if (route.path === "/accept") {
    replace(app, acceptPage(route.params.get("token"), () => void afterSignIn()));
    return;
  }
  const session = currentSession();
  if (!session || route.path === "/sign-in") {
    replace(app, signInPage(() => void afterSignIn()));
    return;
  }
  const entry = MENU.find((m) => m.path === route.path);
  if (!entry || !entry.allowed(session)) {
    const target = home(session);
    if (target !== route.path && MENU.find((m) => m.path === target)?.allowed(session)) {
      go(target);
      return;
    }
    replace(app, shell(session, route.path, notice("warn", "You have no access to this page."), () => void leave()));
    return;
  }
  replace(app, shell(session, route.path, PAGES[route.path](session), () => void leave()));
  (app.querySelector("main h1") as HTMLElement | null)?.focus();
}

async function boot(): Promise<void> {
  const config = await loadConfig();
  startAuth(config);
  configureApi(config.apiBase, sessionExpired);
  const user = await restoredUser();
  if (user) await establish(user);
  window.addEventListener("hashchange", render);
  render();
}

boot().catch((error: unknown) => {
  replace(app, h("main", { id: "main", class: "center" }, notice("error", `The portal could not start: ${String(error)}`)));
});
