"""What the Access Control API does with the events it consumes (catalog.consumed_by("Access Control API")).

Every effect commits in the intake's transaction together with a bump of the tenant's access version
(`access_state/version`), so every instance's AccessStore sees it within its version check (this
instance's at once). An event that changes nothing (stale, or already in effect) bumps nothing.

- Tenant Suspended / Tenant Deactivated: the tenant is blocked: every principal of the tenant is denied
  (operators are still allowed, and their decision's reason names the block).
- Tenant Reactivated: the tenant is unblocked.
  Out of order: each of these is applied only if it is newer than the last one applied for the same
  source aggregate (CloudEvents source + subject): by `aggregateversion` when both carry one, else by
  event time. A Tenant Suspended arriving after a newer Tenant Reactivated changes nothing.
- User Deactivated: the principal is marked deactivated and denied. Deactivation is undone only by
  User Management (no such event exists yet), not by this API.
- User Access Revoked: the principal is marked revoked (denied) and taken out of every policy binding
  ("user:<uid>") and every group; Permission Policy Changed follows for each policy whose grants changed.
  An admin lifts the revocation with POST .../access/principals/{uid}/restore and binds the user again.
- Revoked sessions: User Role Changed (User Management revokes the user's sessions as its claims
  change), User Deactivated with `sessions_revoked`, and User Access Revoked of scope sessions or all
  move the principal's `tokens_valid_after` to the event's time (`revoked_at`), never back: the kernel
  refuses tokens signed in before it as revoked (shared.access), with no Identity Platform lookup.
- MFA Challenge Failed: the failure is counted by `occurred_at`; `mfa_lockout_threshold` (5) failures
  within `mfa_lockout_window_minutes` (15) lock the principal for `mfa_lockout_minutes` (30) from the
  failure that reached the threshold. A failure the identity platform reports as `locked_out` locks too.
- User Role Changed: roles are token claims, so nothing about grants is stored; the new role is
  recorded on the principal's state, where the decision endpoint uses it when asked without roles.
  A role event older than the last applied for the same user (aggregateversion, else time) is ignored.
- User Invited: the principal's state is created as pending (email, invitation, role); a pending
  principal is not denied for being pending.
- Security Policy Updated: the tenant's security settings are stored (each change's `after`); a policy
  version not newer than the stored one is ignored. Used here: `mfa_lockout_threshold`,
  `mfa_lockout_window_minutes`, `mfa_lockout_minutes`, `alert_lockout_minutes` (integers; a missing or
  out-of-range value keeps its default).
- Audit Alert Triggered: an alert of severity critical from the rule `role-escalation` with an
  `actor_id` locks that actor (the user who escalated a role) for `alert_lockout_minutes` (1440) from
  the alert's event time. The Audit API's built-in `role-escalation` rule is severity high, so a
  tenant opts in by defining its own `role-escalation` rule with severity critical. Other alerts: nothing.

Permission Policy Changed is published only when a policy or a grant changed (User Access Revoked
removing bindings). Tenant blocks, deactivations, locks and recorded roles are not policy changes:
they deny without changing what any policy grants, and User Management and the Audit API learn of them
from the events that caused them.
"""

from __future__ import annotations

from collections.abc import Mapping

from functions.access_control_api.service import build_service
from shared.intake import EventHandler
from shared.platform import Platform


def build_handlers(platform: Platform) -> Mapping[str, EventHandler]:
    service = build_service(platform)
    return {
        "Tenant Suspended": service.tenant_block,
        "Tenant Deactivated": service.tenant_block,
        "Tenant Reactivated": service.tenant_block,
        "User Deactivated": service.user_deactivated,
        "User Access Revoked": service.user_access_revoked,
        "MFA Challenge Failed": service.mfa_challenge_failed,
        "User Role Changed": service.user_role_changed,
        "User Invited": service.user_invited,
        "Security Policy Updated": service.security_policy_updated,
        "Audit Alert Triggered": service.audit_alert_triggered,
    }
