import { api } from "../api";
import { signIn } from "../auth";
import { field, h } from "../dom";
import { ApiError } from "../problem";
import { errorText, heading, notice, statusBox } from "../ui";

interface AcceptedUser {
  email: string;
  idp_tenant_id: string | null;
}

/** Why an invitation cannot be used, in plain words (the API's problem types). */
export function invitationRefusal(error: unknown): string {
  if (!(error instanceof ApiError)) return errorText(error);
  switch (error.kind) {
    case "invitation-expired":
      return "This invitation has expired. Ask your administrator to send a new one.";
    case "invitation-revoked":
      return "This invitation was revoked. Ask your administrator if you still need access.";
    case "invitation-used":
      return "This invitation was already accepted. Sign in with your e-mail and password.";
    case "not-found":
      return "This invitation link is not valid (a newer invitation may have replaced it).";
    default:
      return errorText(error);
  }
}

export function acceptPage(token: string | null, done: () => void): HTMLElement {
  if (!token) {
    return h(
      "main",
      { id: "main", class: "center" },
      h("div", { class: "card narrow" }, heading("Accept invitation"), notice("error", "This link has no invitation in it.")),
    );
  }
  const name = h("input", { name: "display_name", autocomplete: "name", required: true, maxlength: "200" });
  const password = h("input", {
    name: "password",
    type: "password",
    autocomplete: "new-password",
    required: true,
    minlength: "10",
    maxlength: "128",
  });
  const confirm = h("input", { name: "confirm", type: "password", autocomplete: "new-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Set password and sign in");
  const status = statusBox();
  const form = h(
    "form",
    {
      class: "card narrow",
      onsubmit: async (event: Event) => {
        event.preventDefault();
        if (password.value !== confirm.value) {
          status.replaceChildren(notice("error", "The two passwords differ."));
          confirm.focus();
          return;
        }
        submit.disabled = true;
        status.replaceChildren(notice("info", "Accepting the invitation…"));
        try {
          const user = await api<AcceptedUser>("user_management_api", "/invitations/accept", {
            method: "POST",
            anonymous: true,
            body: { token, password: password.value, display_name: name.value.trim() },
          });
          await signIn(user.email, password.value, user.idp_tenant_id);
          history.replaceState(null, "", location.pathname); // the token leaves the address bar
          done();
        } catch (error) {
          status.replaceChildren(notice("error", invitationRefusal(error)));
          submit.disabled = false;
        }
      },
    },
    heading("Accept your invitation"),
    h("p", {}, "Choose your name and a password (10 characters or more) to join your workspace."),
    field("Your name", name),
    field("Password", password, "At least 10 characters."),
    field("Repeat the password", confirm),
    submit,
    status,
  );
  return h("main", { id: "main", class: "center" }, form);
}
