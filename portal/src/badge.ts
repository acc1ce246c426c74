// The unread badge: refreshed every few seconds while the page is open and visible, and at once after
// the inbox changes, so a new notification shows without a reload.
import { api } from "./api";
import { currentSession } from "./session";

const POLL_MS = 5000;
let timer: number | undefined;
let element: HTMLElement | null = null;

export function attachBadge(badge: HTMLElement): void {
  element = badge;
  void refreshBadge();
  window.clearInterval(timer);
  timer = window.setInterval(() => {
    if (document.visibilityState === "visible") void refreshBadge();
  }, POLL_MS);
}

export function detachBadge(): void {
  window.clearInterval(timer);
  element = null;
}

export async function refreshBadge(): Promise<void> {
  const session = currentSession();
  if (!element || !session?.tenantId) return;
  try {
    const { unread } = await api<{ unread: number }>(
      "notification_api",
      `/tenants/${session.tenantId}/notifications/inbox/unread-count`,
    );
    element.textContent = unread > 0 ? String(unread) : "";
    element.hidden = unread === 0;
    element.setAttribute("aria-label", `${unread} unread`);
  } catch {
    // A suspended workspace refuses it; the banner on the page says why.
  }
}
