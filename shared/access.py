"""The kernel's access decision engine: may this principal use this permission in this tenant?

`decide()` is pure (no I/O): it answers from a `TenantAccess` snapshot, which `AccessStore` loads from
Firestore and caches per instance. The Access Control API owns the data; every API's authorization
asks the store (wired into shared.http by the HTTP kernel).

Layout, all under the tenant (written only by the Access Control API):

    tenants/{tid}/access_roles/{role_id}       custom role {name, permissions: [...]}
    tenants/{tid}/access_groups/{group_id}     {members: [uid, ...], description}
    tenants/{tid}/access_policies/{policy_id}  a binding {role, members: ["user:<uid>", "group:<gid>"]}
    tenants/{tid}/access_state/tenant          {blocked, status, reason, since}
    tenants/{tid}/access_state/version         {version: int}, bumped in the transaction of ANY change
    tenants/{tid}/access_principals/{uid}      {locked_until, revoked, deactivated, restricted,
                                                tokens_valid_after, ...}

The rule, in order:
1. A platform operator is allowed everything; the reason still names a tenant block, if any.
2. A platform service (another function, shared.auth) holds its fixed service permissions in every
   tenant, blocked or not (the platform keeps operating a suspended tenant, e.g. offboarding).
3. A principal of another tenant (or of none) is denied.
4. A blocked tenant (suspended or deactivated) denies every one of its principals.
5. A token whose sign-in (`auth_time`) predates the principal's `tokens_valid_after` is refused as
   revoked (the kernel answers 401: sign in again). The instant is set by the events that revoke a
   user's sessions (User Role Changed, User Deactivated, User Access Revoked), compared at Identity
   Platform's one-second resolution, so ID tokens need no per-request revocation call (shared.auth).
6. A deactivated, revoked, or (until `locked_until`) locked principal is denied.
7. Otherwise the permissions of the principal's token roles (built-in roles of shared.authz, custom
   roles by id) and of every policy binding naming "user:<uid>" or a group holding the uid are united;
   the permission is allowed iff it is in that union.

Caching: a snapshot is reused while the tenant's version document is unchanged; that document is
re-read at most every `version_check_seconds` per tenant, so a change made by another instance is seen
within that time, and one made in this instance at once (`invalidate`). The loader reads the version
first and the data after, so a snapshot is never older than the version it carries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from shared.authz import BUILTIN_ROLES, Principal
from shared.config import get_settings
from shared.problems import Problem

if TYPE_CHECKING:
    from google.cloud import firestore

TENANTS = "tenants"
ROLES = "access_roles"
GROUPS = "access_groups"
POLICIES = "access_policies"
STATE = "access_state"
PRINCIPALS = "access_principals"
TOKENS_VALID_AFTER = "tokens_valid_after"  # on access_principals/{uid}
# An ID token lives one hour (plus clock skew): a tokens_valid_after older than this refuses nothing.
TOKEN_LIFETIME = timedelta(hours=1, minutes=5)
TENANT_STATE = "tenant"  # access_state/tenant: the tenant block
VERSION = "version"  # access_state/version: {version: int}

log = logging.getLogger(__name__)

USER_MEMBER = "user:"
GROUP_MEMBER = "group:"


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    reason: str  # "granted by role admin via policy p1", "tenant suspended: ...", "principal locked ..."
    token_revoked: bool = False  # refused for the token's age, not the principal: signing in again helps


@dataclass(frozen=True)
class CustomRole:
    id: str
    name: str
    permissions: frozenset[str]


@dataclass(frozen=True)
class Binding:
    """A policy: grants `role` to its members ("user:<uid>" or "group:<gid>")."""

    id: str
    role: str
    members: frozenset[str]
    description: str = ""

    def reaches(self, uid: str, groups: Mapping[str, frozenset[str]]) -> str | None:
        """How this binding reaches `uid`: "" directly, a group id through that group, None not at all."""
        if USER_MEMBER + uid in self.members:
            return ""
        for member in sorted(self.members):
            if member.startswith(GROUP_MEMBER) and uid in groups.get(member[len(GROUP_MEMBER) :], ()):
                return member[len(GROUP_MEMBER) :]
        return None


@dataclass(frozen=True)
class TenantBlock:
    status: str  # suspended | deactivated
    reason: str
    since: datetime | None = None


@dataclass(frozen=True)
class PrincipalState:
    uid: str
    locked_until: datetime | None = None
    lock_reason: str | None = None
    revoked: bool = False
    deactivated: bool = False
    deactivated_at: datetime | None = None
    tokens_valid_after: datetime | None = None  # tokens signed in before it are revoked


def _frozen_map(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


@dataclass(frozen=True)
class TenantAccess:
    """One tenant's access configuration at one version: immutable, shared between threads."""

    tenant_id: str
    version: int = 0
    roles: Mapping[str, CustomRole] = field(default_factory=dict)
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    policies: Mapping[str, Binding] = field(default_factory=dict)
    block: TenantBlock | None = None
    principals: Mapping[str, PrincipalState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("roles", "groups", "policies", "principals"):
            object.__setattr__(self, name, _frozen_map(getattr(self, name)))

    def role_permissions(self, role_id: str) -> frozenset[str]:
        """A built-in role's permissions, else a custom role's; nothing for an unknown role."""
        builtin = BUILTIN_ROLES.get(role_id)
        if builtin is not None:
            return builtin
        custom = self.roles.get(role_id)
        return custom.permissions if custom is not None else frozenset()

    def users_of(self, binding: Binding) -> frozenset[str]:
        """Every uid a binding reaches, directly or through its groups."""
        users: set[str] = set()
        for member in binding.members:
            if member.startswith(USER_MEMBER):
                users.add(member[len(USER_MEMBER) :])
            elif member.startswith(GROUP_MEMBER):
                users |= self.groups.get(member[len(GROUP_MEMBER) :], frozenset())
        return frozenset(users)

    @classmethod
    def from_documents(
        cls,
        tenant_id: str,
        version: Mapping[str, Any] | None,
        tenant_state: Mapping[str, Any] | None,
        roles: Iterable[tuple[str, Mapping[str, Any]]],
        groups: Iterable[tuple[str, Mapping[str, Any]]],
        policies: Iterable[tuple[str, Mapping[str, Any]]],
        principals: Iterable[tuple[str, Mapping[str, Any]]] = (),
    ) -> TenantAccess:
        """Parse stored documents ((id, data) pairs); tolerant of odd values, never more permissive."""
        return cls(
            tenant_id=tenant_id,
            version=version_of(version),
            roles={rid: role_from_document(rid, doc) for rid, doc in roles},
            groups={gid: _strings(doc.get("members")) for gid, doc in groups},
            policies={pid: binding_from_document(pid, doc) for pid, doc in policies},
            block=block_from_document(tenant_state),
            principals={uid: principal_from_document(uid, doc) for uid, doc in principals},
        )


def _strings(value: Any) -> frozenset[str]:
    return frozenset(v for v in value if isinstance(v, str)) if isinstance(value, list) else frozenset()


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


def version_of(document: Mapping[str, Any] | None) -> int:
    value = (document or {}).get("version")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def role_from_document(role_id: str, document: Mapping[str, Any]) -> CustomRole:
    name = document.get("name")
    return CustomRole(
        role_id, name if isinstance(name, str) else role_id, _strings(document.get("permissions"))
    )


def binding_from_document(policy_id: str, document: Mapping[str, Any]) -> Binding:
    role = document.get("role")
    description = document.get("description")
    return Binding(
        policy_id,
        role if isinstance(role, str) else "",
        _strings(document.get("members")),
        description if isinstance(description, str) else "",
    )


def block_from_document(document: Mapping[str, Any] | None) -> TenantBlock | None:
    if not document or document.get("blocked") is not True:
        return None
    status, reason = document.get("status"), document.get("reason")
    return TenantBlock(
        status if isinstance(status, str) and status else "blocked",
        reason if isinstance(reason, str) else "",
        _time(document.get("since")),
    )


def principal_from_document(uid: str, document: Mapping[str, Any]) -> PrincipalState:
    reason = document.get("lock_reason")
    return PrincipalState(
        uid=uid,
        locked_until=_time(document.get("locked_until")),
        lock_reason=reason if isinstance(reason, str) else None,
        revoked=document.get("revoked") is True,
        deactivated=document.get("deactivated") is True,
        deactivated_at=_time(document.get("deactivated_at")),
        tokens_valid_after=_time(document.get(TOKENS_VALID_AFTER)),
    )


# --------------------------------------------------------------------------------------------------------
# The decision (pure)
# --------------------------------------------------------------------------------------------------------


def _deny(reason: str) -> AccessDecision:
    return AccessDecision(False, reason)


def _signed_in_since(principal: Principal, moment: datetime | None) -> bool:
    signed_in = principal.authenticated_at
    return signed_in is not None and moment is not None and signed_in > moment


def token_predates(signed_in: datetime | None, valid_after: datetime) -> bool:
    """Whether a token signed in at `signed_in` (None: unknown) was revoked at `valid_after`. Identity
    Platform keeps both in whole seconds and accepts a token of the revocation's own second: so does this."""
    return signed_in is None or signed_in < valid_after.replace(microsecond=0)


def decide(
    snapshot: TenantAccess,
    principal: Principal,
    permission: str,
    *,
    now: datetime | None = None,
    check_token: bool = True,
) -> AccessDecision:
    """The decision for `principal` using `permission` in the snapshot's tenant (see the module doc).
    `check_token=False` asks about the principal alone, not a token it presents (rule 5 skipped)."""
    block = snapshot.block
    blocked = f"tenant {block.status}" + (f": {block.reason}" if block.reason else "") if block else None
    if principal.is_operator:
        return AccessDecision(True, f"platform operator ({blocked})" if blocked else "platform operator")
    if principal.is_service:
        # Another function of the platform: its fixed service permissions (shared.authz), in any tenant.
        if not principal.can(permission):
            return _deny(f"platform service lacks {permission}")
        return AccessDecision(True, f"platform service ({blocked})" if blocked else "platform service")
    if principal.tenant_id != snapshot.tenant_id:
        return _deny(
            "principal belongs to another tenant" if principal.tenant_id else "principal has no tenant"
        )
    if blocked:
        return _deny(blocked)
    state = snapshot.principals.get(principal.uid)
    if state is not None:
        valid_after = state.tokens_valid_after
        if (
            check_token
            and valid_after is not None
            and token_predates(principal.authenticated_at, valid_after)
        ):
            return AccessDecision(
                False,
                f"token signed in before its revocation at {valid_after.isoformat()}",
                token_revoked=True,
            )
        if state.deactivated and not _signed_in_since(principal, state.deactivated_at):
            # A deactivated identity cannot sign in: a sign-in after the deactivation means User
            # Management reactivated it (the seed has no "User Reactivated" event to tell us).
            return _deny("principal deactivated")
        if state.revoked:
            return _deny("principal access revoked")
        moment = now or datetime.now(UTC)
        if state.locked_until is not None and moment < state.locked_until:
            why = f": {state.lock_reason}" if state.lock_reason else ""
            return _deny(f"principal locked until {state.locked_until.isoformat()}{why}")
    for role in sorted(principal.roles):
        if permission in snapshot.role_permissions(role):
            return AccessDecision(True, f"granted by role {role} via token claims")
    for policy_id in sorted(snapshot.policies):
        binding = snapshot.policies[policy_id]
        if permission not in snapshot.role_permissions(binding.role):
            continue
        via = binding.reaches(principal.uid, snapshot.groups)
        if via is not None:
            group = f" (group {via})" if via else ""
            return AccessDecision(True, f"granted by role {binding.role} via policy {policy_id}{group}")
    return _deny(f"no policy grants {permission}")


# --------------------------------------------------------------------------------------------------------
# Loading and caching
# --------------------------------------------------------------------------------------------------------


class AccessLoader(Protocol):
    """The store's only I/O: unit tests pass a small fake."""

    def version(self, tenant_id: str) -> int: ...

    def load(self, tenant_id: str) -> TenantAccess: ...


class FirestoreAccessLoader:
    """Seven reads per load: the version first, then the block, roles, groups, policies, the principals
    whose state restricts them (`restricted == true`) and those whose tokens were revoked recently
    enough for a revoked token to be still unexpired (`tokens_valid_after` within TOKEN_LIFETIME);
    other principals need nothing stored. Every read has the load's deadline (retries included)."""

    def __init__(self, db: firestore.Client, deadline_seconds: float = 5.0) -> None:
        from shared.clients import call_options

        self.db = db
        self._call = call_options(deadline_seconds)

    def _tenant(self, tenant_id: str) -> firestore.DocumentReference:
        return self.db.collection(TENANTS).document(tenant_id)

    def version(self, tenant_id: str) -> int:
        snapshot = self._tenant(tenant_id).collection(STATE).document(VERSION).get(**self._call)
        return version_of(snapshot.to_dict() if snapshot.exists else None)

    def load(self, tenant_id: str) -> TenantAccess:
        from google.cloud import firestore

        tenant = self._tenant(tenant_id)
        version = tenant.collection(STATE).document(VERSION).get(**self._call)
        state = tenant.collection(STATE).document(TENANT_STATE).get(**self._call)

        def pairs(query: Any) -> list[tuple[str, dict[str, Any]]]:
            return [(s.id, s.to_dict() or {}) for s in query.stream(**self._call)]

        principals = tenant.collection(PRINCIPALS)
        restricted = principals.where(filter=firestore.FieldFilter("restricted", "==", True))
        # A separate query, not an OR: an inequality leaves out every document without its field.
        recently_revoked = principals.where(
            filter=firestore.FieldFilter(TOKENS_VALID_AFTER, ">", datetime.now(UTC) - TOKEN_LIFETIME)
        )
        return TenantAccess.from_documents(
            tenant_id,
            version.to_dict() if version.exists else None,
            state.to_dict() if state.exists else None,
            pairs(tenant.collection(ROLES)),
            pairs(tenant.collection(GROUPS)),
            pairs(tenant.collection(POLICIES)),
            {**dict(pairs(recently_revoked)), **dict(pairs(restricted))}.items(),
        )


@dataclass
class _Entry:
    snapshot: TenantAccess
    checked_at: float


@dataclass
class _Flight:
    """One tenant's load (or version check) in progress: other requests for that tenant wait on it,
    with a deadline; requests for other tenants never see it."""

    result: Future[TenantAccess]
    started_at: float


def access_unavailable() -> Problem:
    return Problem(
        503,
        "access-unavailable",
        "The access configuration of this tenant could not be read in time: retry shortly.",
        headers={"Retry-After": "1"},
    )


class AccessStore:
    """Per-instance cache of tenant snapshots: bounded (LRU), thread-safe, one load per tenant at a time.

    No lock is held across I/O: a tenant's load runs in the requesting thread, and concurrent requests
    for the same tenant wait for it at most `load_deadline_seconds`. A load that fails or overruns its
    deadline fails only the requests of that tenant: each is served the last good snapshot when one
    was checked within `stale_seconds`, and is otherwise answered 503 (`access_unavailable`). A load
    older than its deadline is abandoned: the next request starts a fresh one.
    """

    def __init__(
        self,
        loader: AccessLoader,
        *,
        version_check_seconds: float = 2.0,
        max_tenants: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        load_deadline_seconds: float = 5.0,
        stale_seconds: float = 30.0,
    ) -> None:
        if max_tenants < 1:
            raise ValueError("max_tenants must be at least 1")
        self.loader = loader
        self.version_check_seconds = version_check_seconds
        self.max_tenants = max_tenants
        self.load_deadline_seconds = load_deadline_seconds
        self.stale_seconds = stale_seconds
        self._clock = clock
        self._lock = threading.Lock()  # guards the maps below; never held across I/O
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        self._epoch = 0  # moves on every invalidate: a load started before it is not cached

    @classmethod
    def for_firestore(
        cls, db: firestore.Client, *, load_deadline_seconds: float = 5.0, **options: Any
    ) -> AccessStore:
        return cls(
            FirestoreAccessLoader(db, load_deadline_seconds),
            load_deadline_seconds=load_deadline_seconds,
            **options,
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _fresh(self, tenant_id: str) -> tuple[_Entry | None, bool, int]:
        """(cached entry, whether it may be used without a version check, epoch) under the lock."""
        with self._lock:
            entry = self._entries.get(tenant_id)
            if entry is not None:
                self._entries.move_to_end(tenant_id)
                if self._clock() - entry.checked_at < self.version_check_seconds:
                    return entry, True, self._epoch
            return entry, False, self._epoch

    def snapshot(self, tenant_id: str) -> TenantAccess:
        entry, fresh, _ = self._fresh(tenant_id)
        if entry is not None and fresh:
            return entry.snapshot
        with self._lock:
            flight = self._flights.get(tenant_id)
            mine = flight is None or self._clock() - flight.started_at > self.load_deadline_seconds
            if mine:
                flight = self._flights[tenant_id] = _Flight(Future(), self._clock())
            epoch = self._epoch
        assert flight is not None
        if mine:
            try:
                flight.result.set_result(self._refresh(tenant_id, epoch))
            except Exception as exc:  # handed to every waiter of this flight
                flight.result.set_exception(exc)
            finally:
                with self._lock:
                    if self._flights.get(tenant_id) is flight:
                        del self._flights[tenant_id]
        try:
            return flight.result.result(timeout=self.load_deadline_seconds)
        except Exception as exc:
            return self._fallback(tenant_id, exc)

    def _refresh(self, tenant_id: str, epoch: int) -> TenantAccess:
        """Check the cached snapshot's version, or load it anew; cache it unless invalidated since."""
        with self._lock:
            entry = self._entries.get(tenant_id)
        if entry is not None and self.loader.version(tenant_id) == entry.snapshot.version:
            with self._lock:
                if self._epoch == epoch and self._entries.get(tenant_id) is entry:
                    entry.checked_at = self._clock()
            return entry.snapshot
        loaded = self.loader.load(tenant_id)
        with self._lock:
            if self._epoch == epoch:
                self._entries[tenant_id] = _Entry(loaded, self._clock())
                self._entries.move_to_end(tenant_id)
                while len(self._entries) > self.max_tenants:
                    self._entries.popitem(last=False)
        return loaded

    def _fallback(self, tenant_id: str, exc: Exception) -> TenantAccess:
        """The last good snapshot while it is recent enough, else 503."""
        log.warning(
            "access snapshot load failed or timed out",
            extra={"tenant_id": tenant_id, "error": type(exc).__name__},
        )
        with self._lock:
            entry = self._entries.get(tenant_id)
            if entry is not None and self._clock() - entry.checked_at <= self.stale_seconds:
                return entry.snapshot
        raise access_unavailable() from exc

    def invalidate(self, tenant_id: str) -> None:
        """Drop the tenant's snapshot: the next decision loads it again (called after a change)."""
        with self._lock:
            self._entries.pop(tenant_id, None)
            self._epoch += 1

    def decide(self, principal: Principal, permission: str, tenant_id: str) -> AccessDecision:
        return decide(self.snapshot(tenant_id), principal, permission)


_STORES: dict[int, AccessStore] = {}
_STORES_LOCK = threading.Lock()


def access_store(db: firestore.Client) -> AccessStore:
    """The one store of this instance for `db`: every function served by the process shares it, so an
    invalidation by the Access Control API reaches every API's authorization at once."""
    with _STORES_LOCK:
        store = _STORES.get(id(db))
        if store is None:
            settings = get_settings()
            store = _STORES[id(db)] = AccessStore.for_firestore(
                db,
                load_deadline_seconds=settings.access_load_deadline_seconds,
                stale_seconds=settings.access_stale_seconds,
            )
        return store
