// Who is signed in, and in which workspace (tenant). The workspace's ids are not secret; they are kept
// in sessionStorage so a reload restores the screen (the Firebase session restores the user).
import type { User } from "firebase/auth";
import { claimsOf } from "./auth";
import { type Claims, Permissions } from "./permissions";

export interface Session {
  user: User;
  claims: Claims;
  perms: Permissions;
  tenantId: string | null; // null for a platform operator
}

let session: Session | null = null;

export async function establish(user: User): Promise<Session> {
  const claims = await claimsOf(user);
  session = {
    user,
    claims,
    perms: new Permissions(claims),
    tenantId: typeof claims.tenant_id === "string" ? claims.tenant_id : null,
  };
  return session;
}

export function currentSession(): Session | null {
  return session;
}

export function clearSession(): void {
  session = null;
}

const WORKSPACE = "cmp.workspace";

export function rememberWorkspace(slug: string): void {
  sessionStorage.setItem(WORKSPACE, slug);
}

export function rememberedWorkspace(): string {
  return sessionStorage.getItem(WORKSPACE) ?? "";
}
