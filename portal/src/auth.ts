// Sign-in through the Firebase JS SDK against Identity Platform (or the Auth emulator locally).
// Tenant users sign in inside their tenant's Identity Platform tenant; platform operators at the
// project level. Session persistence: the session ends with the tab and nothing sits in localStorage.
import { initializeApp } from "firebase/app";
import {
  type Auth,
  type User,
  browserSessionPersistence,
  connectAuthEmulator,
  initializeAuth,
  onIdTokenChanged,
  signInWithEmailAndPassword,
  signOut as firebaseSignOut,
} from "firebase/auth";
import type { PortalConfig } from "./config";
import type { Claims } from "./permissions";

let auth: Auth | null = null;

export function startAuth(config: PortalConfig): Auth {
  const app = initializeApp({ apiKey: config.apiKey, projectId: config.projectId, authDomain: "" });
  auth = initializeAuth(app, { persistence: browserSessionPersistence });
  if (config.authEmulator) connectAuthEmulator(auth, config.authEmulator, { disableWarnings: true });
  return auth;
}

function current(): Auth {
  if (!auth) throw new Error("auth is not started");
  return auth;
}

/** Resolves once the persisted session (if any) is restored. */
export function restoredUser(): Promise<User | null> {
  return new Promise((resolve) => {
    const stop = onIdTokenChanged(current(), (user) => {
      stop();
      resolve(user);
    });
  });
}

export async function signIn(email: string, password: string, idpTenantId: string | null): Promise<User> {
  const a = current();
  a.tenantId = idpTenantId;
  const credential = await signInWithEmailAndPassword(a, email, password);
  return credential.user;
}

export async function signOut(): Promise<void> {
  await firebaseSignOut(current());
}

export async function idToken(forceRefresh = false): Promise<string | null> {
  const user = current().currentUser;
  return user ? user.getIdToken(forceRefresh) : null;
}

export async function claimsOf(user: User): Promise<Claims> {
  const result = await user.getIdTokenResult();
  return { ...(result.claims as Claims), email: user.email ?? undefined };
}

/** Firebase's error codes in words a person understands. */
export function signInError(error: unknown): string {
  const code = (error as { code?: string }).code ?? "";
  if (
    code === "auth/invalid-credential" ||
    code === "auth/wrong-password" ||
    code === "auth/user-not-found" ||
    code === "auth/invalid-email"
  ) {
    return "The e-mail or password is wrong.";
  }
  if (code === "auth/user-disabled") return "This account is disabled: ask your administrator.";
  if (code === "auth/too-many-requests") return "Too many attempts: wait a moment and try again.";
  if (code === "auth/network-request-failed") return "The sign-in service did not answer: try again.";
  return error instanceof Error ? error.message : String(error);
}
