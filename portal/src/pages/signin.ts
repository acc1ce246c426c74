import { api } from "../api";
import { signIn, signInError } from "../auth";
import { field, h } from "../dom";
import { rememberWorkspace, rememberedWorkspace } from "../session";
import { errorText, heading, notice, statusBox } from "../ui";

interface Workspace {
  tenant_id: string;
  name: string;
}
interface SignInOptions {
  idp_tenant_id: string;
}

/** The Identity Platform tenant of a workspace slug (two public lookups, no token needed). */
async function identityTenant(slug: string): Promise<string> {
  const workspace = await api<Workspace>("tenant_api", `/sign-in/${encodeURIComponent(slug)}`, {
    anonymous: true,
  });
  const options = await api<SignInOptions>(
    "user_management_api",
    `/tenants/${encodeURIComponent(workspace.tenant_id)}/sign-in`,
    { anonymous: true },
  );
  return options.idp_tenant_id;
}

export function signInPage(done: () => void, message?: string): HTMLElement {
  const workspace = h("input", {
    name: "workspace",
    autocomplete: "organization",
    value: rememberedWorkspace(),
    autocapitalize: "none",
    spellcheck: "false",
  });
  const email = h("input", { name: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", {
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const status = statusBox();
  if (message) status.append(notice("info", message));

  const form = h(
    "form",
    {
      class: "card narrow",
      onsubmit: async (event: Event) => {
        event.preventDefault();
        submit.disabled = true;
        status.replaceChildren(notice("info", "Signing in…"));
        try {
          const slug = workspace.value.trim().toLowerCase();
          const idpTenant = slug ? await identityTenant(slug) : null;
          await signIn(email.value.trim(), password.value, idpTenant);
          rememberWorkspace(slug);
          done();
        } catch (error) {
          const text = (error as { code?: string }).code ? signInError(error) : errorText(error);
          status.replaceChildren(notice("error", text));
          submit.disabled = false;
        }
      },
    },
    heading("Sign in"),
    field("Workspace", workspace, "Your organisation's workspace name, e.g. acme. Platform operators leave it empty."),
    field("E-mail", email),
    field("Password", password),
    submit,
    status,
  );
  return h("main", { id: "main", class: "center" }, form);
}
