// Calls to the platform's public HTTPS APIs, with the signed-in user's ID token. Every error is the
// API's problem+json; a 401 signs out and returns to sign-in (the current page is kept to come back).
import { idToken } from "./auth";
import { ApiError, type ProblemBody } from "./problem";

let base = "";
let onUnauthorized: () => void = () => {};

export function configureApi(apiBase: string, unauthorized: () => void): void {
  base = apiBase;
  onUnauthorized = unauthorized;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

type RequestInit = {
  method?: string;
  body?: unknown;
  raw?: { text: string; type: string }; // an upload (CSV), sent as it is
  headers?: Record<string, string>;
  anonymous?: boolean;
};

/** The answer's body as text (an NDJSON export, a CSV report); a refusal is the API's problem. */
export async function apiText(fn: string, path: string, init: RequestInit = {}): Promise<string> {
  const headers: Record<string, string> = { Accept: "application/json", ...(init.headers ?? {}) };
  if (!init.anonymous) {
    const token = await idToken();
    if (!token) {
      onUnauthorized();
      throw new ApiError(401, { title: "Signed out", detail: "Sign in again." });
    }
    headers.Authorization = `Bearer ${token}`;
  }
  let body: string | undefined;
  if (init.raw !== undefined) {
    headers["Content-Type"] = init.raw.type;
    body = init.raw.text;
  } else if (init.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(init.body);
  }
  const response = await fetch(`${base}/${fn}${path}`, { method: init.method ?? "GET", headers, body });
  const text = await response.text();
  if (!response.ok) {
    if (response.status === 401 && !init.anonymous) onUnauthorized();
    let problem: ProblemBody = {};
    try {
      problem = (text ? JSON.parse(text) : {}) as ProblemBody;
    } catch {
      problem = { detail: text.slice(0, 200) };
    }
    throw new ApiError(response.status, problem);
  }
  return text;
}

export async function api<T>(fn: string, path: string, init: RequestInit = {}): Promise<T> {
  const text = await apiText(fn, path, init);
  return (text ? JSON.parse(text) : null) as T;
}
