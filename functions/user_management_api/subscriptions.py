"""What the User Management API does with events.

- Permission Policy Changed: the permissions of a role changed. The claims of the users holding that
  role are recomputed from their user document (role and tenant) and, where the identity's claims
  differ, set again with the user's sessions revoked. Permissions themselves are resolved from roles
  on every request (shared.authz / shared.access), so an unchanged claim needs no new token. The work
  runs as a named Cloud Task per policy version, outside the intake's transaction. This instance's
  cached access decisions for the tenant are dropped at once.
"""

from __future__ import annotations

from collections.abc import Mapping

from functions.user_management_api.service import build_service
from shared.contracts.payloads import PermissionPolicyChanged
from shared.intake import Delivered, EventHandler
from shared.platform import Platform
from shared.uow import Tx


def build_handlers(platform: Platform) -> Mapping[str, EventHandler]:
    service = build_service(platform)

    def policy_changed(event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, PermissionPolicyChanged)
        # This instance's access decisions reload the tenant now, not at the next version check.
        platform.access.invalidate(event.tenant_id)
        service.schedule_resync(event.tenant_id, payload.role, payload.policy_id, payload.version)

    return {"Permission Policy Changed": policy_changed}
