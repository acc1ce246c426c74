// The run-time configuration the portal function serves next to the bundle (config.json), so the
// same build runs on the local emulators and deployed.
export interface PortalConfig {
  apiBase: string; // "" when the APIs share the portal's origin (/<function>/...)
  projectId: string;
  apiKey: string;
  authEmulator: string | null;
}

export async function loadConfig(): Promise<PortalConfig> {
  const response = await fetch(new URL("config.json", document.baseURI), { cache: "no-store" });
  if (!response.ok) throw new Error(`The portal configuration did not load (${response.status}).`);
  return (await response.json()) as PortalConfig;
}
