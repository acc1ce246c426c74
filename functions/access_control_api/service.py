"""Access Control API use cases over Firestore: roles, groups, policies, principal states, decisions.

Layout: see shared.access (the kernel reads what this API writes). Every change runs in one
transaction that also bumps `access_state/version`, so every instance's AccessStore sees it within its
version check; this instance's store is invalidated at once. A change of a policy or a grant raises
Permission Policy Changed in the same transaction (outbox).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.cloud import firestore
from pydantic import TypeAdapter, ValidationError

from functions.access_control_api.domain import (
    MAX_GROUPS,
    MAX_POLICIES,
    MAX_ROLES,
    UID,
    PolicyChange,
    SecuritySettings,
    Stamp,
    applied_settings,
    binding_changes,
    later,
    locks_actor,
    mfa_failure,
    newer,
    restricted,
    role_definition_change,
    with_marker,
    without_user,
)
from shared.access import (
    GROUP_MEMBER,
    GROUPS,
    POLICIES,
    PRINCIPALS,
    ROLES,
    STATE,
    TENANT_STATE,
    TENANTS,
    TOKENS_VALID_AFTER,
    VERSION,
    AccessDecision,
    AccessStore,
    Binding,
    TenantAccess,
    access_store,
    decide,
    version_of,
)
from shared.authz import BUILTIN_ROLES, Principal
from shared.catalog import Catalog
from shared.contracts import Actor
from shared.contracts.payloads import (
    AuditAlertTriggered,
    MfaChallengeFailed,
    Permission,
    PermissionPolicyChanged,
    SecurityPolicyUpdated,
    TenantDeactivated,
    TenantReactivated,
    TenantSuspended,
    UserAccessRevoked,
    UserDeactivated,
    UserInvited,
    UserRoleChanged,
)
from shared.events import CloudEvent, new_event
from shared.intake import Delivered
from shared.platform import Platform
from shared.problems import Problem, conflict, not_found, validation_failed
from shared.uow import Tx, UnitOfWork

log = logging.getLogger(__name__)

API_NAME = "Access Control API"
SECURITY = "security"  # access_state/security: the tenant's security settings
META = ("created_at", "updated_at", "updated_by")

T = TypeVar("T")

_PERMISSION: TypeAdapter[str] = TypeAdapter(Permission)


def contract_permissions(permissions: Iterable[str]) -> list[str]:
    """The permissions the event contract's `Permission` pattern accepts, sorted.

    The v1 pattern (`^[a-z][a-z_]*:...`) has no '-', so "audit-alerts:read" cannot travel: it is left
    out of the lists with a warning rather than failing the change (reported to the contract owner).
    """
    accepted: list[str] = []
    for permission in sorted(set(permissions)):
        try:
            accepted.append(_PERMISSION.validate_python(permission))
        except ValidationError:
            log.warning("permission left out of Permission Policy Changed", extra={"permission": permission})
    return accepted


def _stamp(envelope: CloudEvent) -> Stamp:
    return Stamp(envelope.source, envelope.subject, envelope.aggregateversion, envelope.time)


def _without_meta(document: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in META}


@dataclass(frozen=True)
class Config:
    """A tenant's roles, groups and policies as read in a transaction: parsed, and the raw documents."""

    access: TenantAccess
    roles: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    policies: dict[str, dict[str, Any]]


def ensure_grantable(grantor: Principal, role: str, permissions: frozenset[str]) -> None:
    """403 unless `grantor` may grant `role` (the platform's one rule, shared.authz.may_grant)."""
    if not grantor.may_grant(role, permissions):
        raise Problem(
            403,
            "role-not-grantable",
            f"Only a principal holding {role} or a higher role may grant it, by any path.",
            role=role,
        )


def _field_error(pointer: str, detail: str, kind: str) -> dict[str, Any]:
    return {"pointer": pointer, "detail": detail, "type": kind, "in": "body"}


class AccessService:
    def __init__(self, db: firestore.Client, uow: UnitOfWork, catalog: Catalog, store: AccessStore) -> None:
        self.db = db
        self.uow = uow
        self.api_slug = catalog.api(API_NAME).slug
        self.store = store

    # --- persistence -------------------------------------------------------------------------------
    def tenant(self, tenant_id: str) -> firestore.DocumentReference:
        return self.db.collection(TENANTS).document(tenant_id)

    def _collection(self, tenant_id: str, name: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = self.tenant(tenant_id).collection(name)
        return collection

    def roles(self, tenant_id: str) -> firestore.CollectionReference:
        return self._collection(tenant_id, ROLES)

    def groups(self, tenant_id: str) -> firestore.CollectionReference:
        return self._collection(tenant_id, GROUPS)

    def policies(self, tenant_id: str) -> firestore.CollectionReference:
        return self._collection(tenant_id, POLICIES)

    def principals(self, tenant_id: str) -> firestore.CollectionReference:
        return self._collection(tenant_id, PRINCIPALS)

    def state(self, tenant_id: str, name: str) -> firestore.DocumentReference:
        return self._collection(tenant_id, STATE).document(name)

    def _version_in(self, tx: Tx, tenant_id: str) -> int:
        return version_of(tx.get(self.state(tenant_id, VERSION)))

    def _bump(self, tx: Tx, tenant_id: str, current: int) -> int:
        version = current + 1
        tx.set(self.state(tenant_id, VERSION), {"version": version, "updated_at": datetime.now(UTC)})
        return version

    def _config_in(self, tx: Tx, tenant_id: str) -> Config:
        def read(collection: firestore.CollectionReference, limit: int) -> dict[str, dict[str, Any]]:
            return {s.id: s.to_dict() or {} for s in tx.query(collection.limit(limit))}

        roles = read(self.roles(tenant_id), MAX_ROLES)
        groups = read(self.groups(tenant_id), MAX_GROUPS)
        policies = read(self.policies(tenant_id), MAX_POLICIES)
        access = TenantAccess.from_documents(
            tenant_id, None, None, roles.items(), groups.items(), policies.items()
        )
        return Config(access, roles, groups, policies)

    def _emit(
        self, tx: Tx, tenant_id: str, changes: Iterable[PolicyChange], version: int, actor: Actor
    ) -> None:
        for change in changes:
            payload = PermissionPolicyChanged(
                policy_id=change.policy_id,
                role=change.role,
                version=version,
                granted=contract_permissions(change.granted),
                revoked=contract_permissions(change.revoked),
                actor=actor,
            )
            tx.emit(
                new_event(
                    payload,
                    tenant_id=tenant_id,
                    subject=change.policy_id,
                    source_api_slug=self.api_slug,
                    aggregate_version=version,
                )
            )

    def _change(self, tenant_id: str, work: Callable[[Tx], T]) -> T:
        try:
            return self.uow.run(work, serialize_on=f"access:{tenant_id}")
        finally:
            self.store.invalidate(tenant_id)

    # --- roles -------------------------------------------------------------------------------------
    def role(self, tenant_id: str, role_id: str) -> dict[str, Any] | None:
        snapshot = self.roles(tenant_id).document(role_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    def custom_roles(self, tenant_id: str) -> list[dict[str, Any]]:
        return [
            s.to_dict() or {} for s in self.roles(tenant_id).order_by("__name__").limit(MAX_ROLES).stream()
        ]

    def put_role(
        self,
        tenant_id: str,
        role_id: str,
        name: str,
        permissions: list[str],
        actor: Actor,
        *,
        grantor: Principal,
    ) -> tuple[dict[str, Any], bool]:
        """Create or replace a custom role; answers (document, created). An identical PUT writes nothing.
        Nobody defines a role they could not grant (`shared.authz.may_grant`)."""
        if role_id in BUILTIN_ROLES:
            raise conflict("builtin-role", f"The built-in role {role_id!r} cannot be changed.", role=role_id)
        wanted = sorted(set(permissions))
        ensure_grantable(grantor, role_id, frozenset(wanted))

        def work(tx: Tx) -> tuple[dict[str, Any], bool]:
            version = self._version_in(tx, tenant_id)
            ref = self.roles(tenant_id).document(role_id)
            existing = tx.get(ref)
            if existing is None and len(tx.query(self.roles(tenant_id).limit(MAX_ROLES))) >= MAX_ROLES:
                raise conflict("too-many-roles", f"A tenant may have at most {MAX_ROLES} custom roles.")
            if (
                existing is not None
                and existing.get("name") == name
                and existing.get("permissions") == wanted
            ):
                return existing, False
            now = datetime.now(UTC)
            document = {
                "id": role_id,
                "name": name,
                "permissions": wanted,
                "created_at": (existing or {}).get("created_at", now),
                "updated_at": now,
                "updated_by": actor.id,
            }
            tx.set(ref, document)
            before = frozenset((existing or {}).get("permissions") or ())
            new_version = self._bump(tx, tenant_id, version)
            self._emit(
                tx,
                tenant_id,
                [role_definition_change(role_id, before, frozenset(wanted))],
                new_version,
                actor,
            )
            return document, existing is None

        return self._change(tenant_id, work)

    def delete_role(self, tenant_id: str, role_id: str, actor: Actor) -> None:
        if role_id in BUILTIN_ROLES:
            raise conflict("builtin-role", f"The built-in role {role_id!r} cannot be deleted.", role=role_id)

        def work(tx: Tx) -> None:
            version = self._version_in(tx, tenant_id)
            ref = self.roles(tenant_id).document(role_id)
            existing = tx.get(ref)
            if existing is None:
                raise not_found(f"Role {role_id}")
            bound = self.policies(tenant_id).where(filter=firestore.FieldFilter("role", "==", role_id))
            binding = sorted(s.id for s in tx.query(bound.limit(20)))
            if binding:
                raise conflict(
                    "role-in-use",
                    f"The role {role_id!r} is bound by policies: delete or change them first.",
                    policies=binding,
                )
            tx.delete(ref)
            before = frozenset(existing.get("permissions") or ())
            new_version = self._bump(tx, tenant_id, version)
            self._emit(
                tx, tenant_id, [role_definition_change(role_id, before, frozenset())], new_version, actor
            )

        self._change(tenant_id, work)

    # --- groups ------------------------------------------------------------------------------------
    def group(self, tenant_id: str, group_id: str) -> dict[str, Any] | None:
        snapshot = self.groups(tenant_id).document(group_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    def put_group(
        self,
        tenant_id: str,
        group_id: str,
        description: str,
        members: list[str],
        actor: Actor,
        *,
        grantor: Principal,
    ) -> tuple[dict[str, Any], bool]:
        """Create or replace a group; a policy binding it changes its grants (Permission Policy Changed).
        A member added to a group is granted the roles bound to it: the grant rule applies to each."""
        wanted = sorted(set(members))

        def work(tx: Tx) -> tuple[dict[str, Any], bool]:
            version = self._version_in(tx, tenant_id)
            config = self._config_in(tx, tenant_id)
            existing = config.groups.get(group_id)
            if existing is None and len(config.groups) >= MAX_GROUPS:
                raise conflict("too-many-groups", f"A tenant may have at most {MAX_GROUPS} groups.")
            if (
                existing is not None
                and existing.get("description") == description
                and existing.get("members") == wanted
            ):
                return existing, False
            now = datetime.now(UTC)
            document = {
                "id": group_id,
                "description": description,
                "members": wanted,
                "created_at": (existing or {}).get("created_at", now),
                "updated_at": now,
                "updated_by": actor.id,
            }
            tx.set(self.groups(tenant_id).document(group_id), document)
            after = _replace(config.access, groups={**config.access.groups, group_id: frozenset(wanted)})
            changes = binding_changes(config.access, after)
            for change in changes:
                if change.granted:
                    ensure_grantable(grantor, change.role, after.role_permissions(change.role))
            new_version = self._bump(tx, tenant_id, version)
            self._emit(tx, tenant_id, changes, new_version, actor)
            return document, existing is None

        return self._change(tenant_id, work)

    def delete_group(self, tenant_id: str, group_id: str) -> None:
        def work(tx: Tx) -> None:
            version = self._version_in(tx, tenant_id)
            config = self._config_in(tx, tenant_id)
            if group_id not in config.groups:
                raise not_found(f"Group {group_id}")
            member = GROUP_MEMBER + group_id
            binding = sorted(pid for pid, b in config.access.policies.items() if member in b.members)
            if binding:
                raise conflict(
                    "group-in-use",
                    f"The group {group_id!r} is bound by policies: delete or change them first.",
                    policies=binding,
                )
            tx.delete(self.groups(tenant_id).document(group_id))
            self._bump(tx, tenant_id, version)  # no policy binds it: no grant changes

        self._change(tenant_id, work)

    # --- policies ----------------------------------------------------------------------------------
    def policy(self, tenant_id: str, policy_id: str) -> dict[str, Any] | None:
        snapshot = self.policies(tenant_id).document(policy_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    def put_policy(
        self,
        tenant_id: str,
        policy_id: str,
        role: str,
        members: list[str],
        description: str,
        actor: Actor,
        *,
        grantor: Principal,
    ) -> tuple[dict[str, Any], bool]:
        """Create or replace a binding of `role` to users and groups; both must exist (else 422). The
        grantor must be allowed to grant the role (`shared.authz.may_grant`: an admin never binds owner)."""
        wanted = sorted(set(members))

        def work(tx: Tx) -> tuple[dict[str, Any], bool]:
            version = self._version_in(tx, tenant_id)
            config = self._config_in(tx, tenant_id)
            errors = []
            if role not in BUILTIN_ROLES and role not in config.roles:
                errors.append(_field_error("#/role", f"no role {role!r} in this tenant", "unknown_role"))
            for i, member in enumerate(members):
                group = member[len(GROUP_MEMBER) :] if member.startswith(GROUP_MEMBER) else None
                if group is not None and group not in config.groups:
                    errors.append(
                        _field_error(f"#/members/{i}", f"no group {group!r} in this tenant", "unknown_group")
                    )
            if errors:
                raise validation_failed(errors)
            ensure_grantable(grantor, role, config.access.role_permissions(role))
            existing = config.policies.get(policy_id)
            if existing is None and len(config.policies) >= MAX_POLICIES:
                raise conflict("too-many-policies", f"A tenant may have at most {MAX_POLICIES} policies.")
            if existing is not None and _without_meta(existing) == {
                "id": policy_id,
                "role": role,
                "members": wanted,
                "description": description,
            }:
                return existing, False
            now = datetime.now(UTC)
            document = {
                "id": policy_id,
                "role": role,
                "members": wanted,
                "description": description,
                "created_at": (existing or {}).get("created_at", now),
                "updated_at": now,
                "updated_by": actor.id,
            }
            tx.set(self.policies(tenant_id).document(policy_id), document)
            binding = Binding(policy_id, role, frozenset(wanted), description)
            after = _replace(config.access, policies={**config.access.policies, policy_id: binding})
            new_version = self._bump(tx, tenant_id, version)
            self._emit(tx, tenant_id, binding_changes(config.access, after, {policy_id}), new_version, actor)
            return document, existing is None

        return self._change(tenant_id, work)

    def delete_policy(self, tenant_id: str, policy_id: str, actor: Actor) -> None:
        def work(tx: Tx) -> None:
            version = self._version_in(tx, tenant_id)
            config = self._config_in(tx, tenant_id)
            if policy_id not in config.policies:
                raise not_found(f"Policy {policy_id}")
            tx.delete(self.policies(tenant_id).document(policy_id))
            remaining = {k: v for k, v in config.access.policies.items() if k != policy_id}
            after = _replace(config.access, policies=remaining)
            new_version = self._bump(tx, tenant_id, version)
            self._emit(tx, tenant_id, binding_changes(config.access, after, {policy_id}), new_version, actor)

        self._change(tenant_id, work)

    # --- principals and decisions ------------------------------------------------------------------
    def principal(self, tenant_id: str, uid: str) -> dict[str, Any] | None:
        snapshot = self.principals(tenant_id).document(uid).get()
        return snapshot.to_dict() if snapshot.exists else None

    def restore_principal(self, tenant_id: str, uid: str, actor: Actor) -> dict[str, Any]:
        """Lift a lock (MFA or audit alert) and a revocation; a deactivation stays (User Management's).
        Bindings removed by a revocation are not given back: an admin binds the principal again."""

        def work(tx: Tx) -> dict[str, Any]:
            version = self._version_in(tx, tenant_id)
            ref = self.principals(tenant_id).document(uid)
            before = tx.get(ref)
            if before is None:
                raise not_found(f"Principal {uid}")
            after = {
                **before,
                "locked_until": None,
                "lock_reason": None,
                "mfa_failures": [],
                "revoked": False,
                "updated_by": actor.id,
            }
            saved, _ = self._save_principal(tx, tenant_id, ref, before, after, version)
            return saved

        return self._change(tenant_id, work)

    def decide(
        self, tenant_id: str, uid: str, roles: list[str] | None, permission: str
    ) -> tuple[AccessDecision, int]:
        """The kernel's decision for a principal of this tenant; without `roles`, the role recorded for
        the principal (User Invited, User Role Changed) stands in for its token claims."""
        snapshot = self.store.snapshot(tenant_id)
        if roles is None:
            recorded = (self.principal(tenant_id, uid) or {}).get("role")
            roles = [recorded] if isinstance(recorded, str) else []
        principal = Principal(uid=uid, tenant_id=tenant_id, roles=frozenset(roles))
        # A question about the principal, not about a token it presents.
        return decide(snapshot, principal, permission, check_token=False), snapshot.version

    def _save_principal(
        self,
        tx: Tx,
        tenant_id: str,
        ref: firestore.DocumentReference,
        before: Mapping[str, Any] | None,
        after: dict[str, Any],
        version: int,
    ) -> tuple[dict[str, Any], bool]:
        """Write a principal's state and bump the version, unless nothing changed: (state, written)."""
        now = datetime.now(UTC)
        after = {**after, "restricted": restricted(after, now)}
        if before is not None and _without_meta(before) == _without_meta(after):
            return dict(before), False
        after = {**after, "created_at": (before or {}).get("created_at", now), "updated_at": now}
        tx.set(ref, after)
        self._bump(tx, tenant_id, version)
        self.store.invalidate(tenant_id)  # before commit; the version check covers the gap
        return after, True

    # --- reactions to events (inside the intake's transaction: reads first, then writes) -----------
    def _principal_ref(self, tenant_id: str, uid: str) -> firestore.DocumentReference | None:
        if re.fullmatch(UID, uid) is None:
            log.warning("event names a user id that cannot be a principal", extra={"uid": uid[:200]})
            return None
        return self.principals(tenant_id).document(uid)

    def _new_principal(self, uid: str, status: str) -> dict[str, Any]:
        return {"uid": uid, "status": status, "deactivated": False, "revoked": False, "mfa_failures": []}

    def tenant_block(self, event: Delivered, tx: Tx) -> None:
        """Tenant Suspended / Deactivated block the tenant, Tenant Reactivated unblocks it; an event
        older than the last applied one of the same tenant aggregate changes nothing."""
        payload = event.payload
        tenant_id = event.tenant_id
        version = self._version_in(tx, tenant_id)
        ref = self.state(tenant_id, TENANT_STATE)
        current = tx.get(ref) or {}
        stamp = _stamp(event.envelope)
        if not newer(stamp, current.get("markers")):
            log.info("stale tenant lifecycle event ignored", extra={"event_id": event.envelope.id})
            return
        if isinstance(payload, TenantSuspended | TenantDeactivated):
            status = "suspended" if isinstance(payload, TenantSuspended) else "deactivated"
            blocked, reason = True, payload.reason
        else:
            assert isinstance(payload, TenantReactivated)
            status, blocked, reason = "active", False, None
        tx.set(
            ref,
            {
                "blocked": blocked,
                "status": status,
                "reason": reason,
                "since": event.envelope.time,
                "markers": with_marker(current.get("markers"), stamp),
                "updated_at": datetime.now(UTC),
            },
        )
        self._bump(tx, tenant_id, version)
        self.store.invalidate(tenant_id)

    def user_invited(self, event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, UserInvited)
        self._principal_event(
            event,
            tx,
            payload.user_id,
            lambda state, stamp: {
                **state,
                "email": payload.email,
                "invitation": {"id": payload.invitation_id, "expires_at": payload.expires_at},
                **_role_update(state, stamp, payload.role),
            },
            status="pending",
        )

    def user_role_changed(self, event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, UserRoleChanged)
        self._principal_event(
            event,
            tx,
            payload.user_id,
            # User Management revokes the user's sessions as its claims change: tokens signed in
            # before the change carry the old role.
            lambda state, stamp: _tokens_revoked(
                {**state, **_role_update(state, stamp, payload.new_role)}, event.envelope.time
            ),
        )

    def user_deactivated(self, event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, UserDeactivated)

        def change(state: dict[str, Any], _: Stamp) -> dict[str, Any]:
            if payload.sessions_revoked:  # revoked before the event was raised
                state = _tokens_revoked(state, event.envelope.time)
            if state.get("deactivated") is True:
                return state  # the first deactivation stands
            return {
                **state,
                "email": payload.email,
                "deactivated": True,
                "deactivated_at": event.envelope.time,
                "deactivation_reason": payload.reason,
            }

        self._principal_event(event, tx, payload.user_id, change)

    def mfa_challenge_failed(self, event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, MfaChallengeFailed)
        security = tx.get(self.state(event.tenant_id, SECURITY)) or {}
        settings = SecuritySettings.of(security.get("settings"))

        def change(state: dict[str, Any], _: Stamp) -> dict[str, Any]:
            failures, lock = mfa_failure(state.get("mfa_failures"), payload.occurred_at, settings)
            if payload.locked_out:  # the identity platform locked the account itself
                lock = later(lock, payload.occurred_at + timedelta(minutes=settings.mfa_lockout_minutes))
            result = {**state, "mfa_failures": failures}
            current = state.get("locked_until") if isinstance(state.get("locked_until"), datetime) else None
            if lock is not None and (current is None or lock > current):
                result["locked_until"] = lock
                result["lock_reason"] = (
                    f"{settings.mfa_lockout_threshold} failed MFA challenges within "
                    f"{settings.mfa_lockout_window_minutes} minutes"
                    if not payload.locked_out
                    else "locked out by the identity platform after failed MFA challenges"
                )
            return result

        self._principal_event(event, tx, payload.user_id, change)

    def audit_alert_triggered(self, event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, AuditAlertTriggered)
        if not locks_actor(payload) or payload.actor_id is None:
            return
        security = tx.get(self.state(event.tenant_id, SECURITY)) or {}
        minutes = SecuritySettings.of(security.get("settings")).alert_lockout_minutes
        lock = event.envelope.time + timedelta(minutes=minutes)

        def change(state: dict[str, Any], _: Stamp) -> dict[str, Any]:
            current = state.get("locked_until") if isinstance(state.get("locked_until"), datetime) else None
            if current is not None and current >= lock:
                return state
            reason = f"critical audit alert {payload.alert_id}: {payload.rule_name}"
            return {**state, "locked_until": lock, "lock_reason": reason[:500]}

        self._principal_event(event, tx, payload.actor_id, change)

    def _principal_event(
        self,
        event: Delivered,
        tx: Tx,
        uid: str,
        change: Callable[[dict[str, Any], Stamp], dict[str, Any]],
        status: str = "known",
    ) -> None:
        tenant_id = event.tenant_id
        ref = self._principal_ref(tenant_id, uid)
        if ref is None:
            return
        version = self._version_in(tx, tenant_id)
        before = tx.get(ref)
        state = dict(before) if before is not None else self._new_principal(uid, status)
        self._save_principal(tx, tenant_id, ref, before, change(state, _stamp(event.envelope)), version)

    def user_access_revoked(self, event: Delivered, tx: Tx) -> None:
        """The principal is marked revoked and taken out of every policy and group that names it."""
        payload = event.payload
        assert isinstance(payload, UserAccessRevoked)
        tenant_id = event.tenant_id
        ref = self._principal_ref(tenant_id, payload.user_id)
        if ref is None:
            return
        version = self._version_in(tx, tenant_id)
        before = tx.get(ref)
        config = self._config_in(tx, tenant_id)
        after = without_user(config.access, payload.user_id)
        now = datetime.now(UTC)
        edited = False
        for policy_id, binding in after.policies.items():
            if binding.members != config.access.policies[policy_id].members:
                edited = True
                tx.update(
                    self.policies(tenant_id).document(policy_id),
                    {"members": sorted(binding.members), "updated_at": now, "updated_by": payload.actor.id},
                )
        for group_id, members in after.groups.items():
            if members != config.access.groups[group_id]:
                edited = True
                tx.update(
                    self.groups(tenant_id).document(group_id),
                    {"members": sorted(members), "updated_at": now, "updated_by": payload.actor.id},
                )
        changes = binding_changes(config.access, after)
        state = dict(before) if before is not None else self._new_principal(payload.user_id, "known")
        if payload.scope in ("sessions", "all"):
            state = _tokens_revoked(state, payload.revoked_at)
        revoked = {
            **state,
            "revoked": True,
            "revoked_at": payload.revoked_at,
            "revoke_reason": payload.reason,
            "revoke_scope": payload.scope,
        }
        _, bumped = self._save_principal(tx, tenant_id, ref, before, revoked, version)
        if edited and not bumped:
            self._bump(tx, tenant_id, version)
        if edited:
            self.store.invalidate(tenant_id)
        self._emit(tx, tenant_id, changes, version + 1, payload.actor)

    def security_policy_updated(self, event: Delivered, tx: Tx) -> None:
        """Store the tenant's security settings; an older policy version than the stored one is ignored."""
        payload = event.payload
        assert isinstance(payload, SecurityPolicyUpdated)
        tenant_id = event.tenant_id
        version = self._version_in(tx, tenant_id)
        ref = self.state(tenant_id, SECURITY)
        current = tx.get(ref) or {}
        stored = current.get("policy_version")
        if isinstance(stored, int) and payload.version <= stored:
            log.info("stale security policy ignored", extra={"event_id": event.envelope.id})
            return
        tx.set(
            ref,
            {
                "policy_id": payload.policy_id,
                "policy_version": payload.version,
                "effective_at": payload.effective_at,
                "settings": applied_settings(current.get("settings"), payload.changes),
                "updated_at": datetime.now(UTC),
            },
        )
        self._bump(tx, tenant_id, version)
        self.store.invalidate(tenant_id)


def _role_update(state: Mapping[str, Any], stamp: Stamp, role: str) -> dict[str, Any]:
    """The principal's recorded role, unless a newer role event of the user was applied already."""
    if not newer(stamp, state.get("markers")):
        return {}
    return {"role": role, "markers": with_marker(state.get("markers"), stamp)}


def _tokens_revoked(state: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """The principal's tokens signed in before `at` are revoked (shared.access rule 5); the latest
    revocation wins, whatever order the events arrive in."""
    current = state.get(TOKENS_VALID_AFTER)
    if isinstance(current, datetime) and current >= at:
        return dict(state)
    return {**state, TOKENS_VALID_AFTER: at}


def _replace(access: TenantAccess, **changes: Any) -> TenantAccess:
    fields: dict[str, Any] = {
        "tenant_id": access.tenant_id,
        "version": access.version,
        "roles": access.roles,
        "groups": access.groups,
        "policies": access.policies,
        "block": access.block,
        "principals": access.principals,
    }
    return TenantAccess(**{**fields, **changes})


def build_service(platform: Platform) -> AccessService:
    return AccessService(platform.db, platform.uow, platform.catalog, access_store(platform.db))
