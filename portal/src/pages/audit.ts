import { api } from "../api";
import { h } from "../dom";
import type { Session } from "../session";
import { busy, heading, notice, statusBox } from "../ui";

interface VerifyReport {
  ok: boolean;
  blocks_checked: number;
  entries_checked: number;
  unsealed: number;
  first_broken: { reason?: string; block_seq?: number } | null;
}

export function auditPage(session: Session): HTMLElement {
  const result = statusBox();
  const verify = h("button", { type: "button", class: "primary" }, "Verify chain");
  verify.addEventListener("click", () =>
    busy(verify, result, async () => {
      const report = await api<VerifyReport>("audit_api", `/tenants/${session.tenantId}/audit/verify`);
      const counts = `${report.entries_checked} entries in ${report.blocks_checked} blocks checked, ${report.unsealed} not sealed yet.`;
      result.replaceChildren(
        report.ok
          ? h("p", { class: "notice ok", role: "status", "data-testid": "verify-result" }, `Intact: ${counts}`)
          : notice("error", `Broken: ${report.first_broken?.reason ?? "a block does not match"} (${counts})`),
      );
    }),
  );
  return h(
    "div",
    { class: "page" },
    heading("Audit trail"),
    h("p", {}, "Every change in the workspace is recorded, sealed into hash-chained blocks. Verify recomputes the chain."),
    verify,
    result,
  );
}
