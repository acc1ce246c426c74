"""Access Control API over HTTP: roles, groups, policies, principal states and decisions.

Every path is under /tenants/{tenant_id}/access, so the kernel confines a tenant's principals to their
own tenant. Reads need access:read, changes access:manage, the decision endpoint access:decide.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from functions.access_control_api.domain import MAX_MEMBERS, MEMBER, OBJECT_ID, ROLE_ID, UID
from functions.access_control_api.service import API_NAME, AccessService, build_service
from shared.authz import ALL_PERMISSIONS, BUILTIN_ROLES, TENANT_PERMISSIONS
from shared.contracts import Actor
from shared.http import Reply, RequestContext, Router
from shared.pagination import PageOf, PageParams, paginate
from shared.platform import Platform
from shared.problems import not_found, validation_failed

BASE = "/tenants/{tenant_id}/access"


def _tenant_permission(value: str) -> str:
    if value not in TENANT_PERMISSIONS:
        raise ValueError("not a permission a tenant role can hold")
    return value


def _permission(value: str) -> str:
    if value not in ALL_PERMISSIONS:
        raise ValueError("not a known permission")
    return value


class _Strict(BaseModel):
    # python-re: the id patterns use look-aheads, which the default Rust engine lacks.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, regex_engine="python-re")


class RoleBody(_Strict):
    name: str = Field(min_length=1, max_length=200)
    permissions: list[Annotated[str, AfterValidator(_tenant_permission)]] = Field(max_length=200)


class GroupBody(_Strict):
    description: str = Field(default="", max_length=500)
    members: list[Annotated[str, Field(pattern=UID)]] = Field(max_length=MAX_MEMBERS)


class PolicyBody(_Strict):
    role: str = Field(pattern=ROLE_ID)
    members: list[Annotated[str, Field(pattern=MEMBER)]] = Field(
        max_length=MAX_MEMBERS, description='"user:<uid>" or "group:<group id>"'
    )
    description: str = Field(default="", max_length=500)


class DecisionPrincipal(_Strict):
    uid: str = Field(pattern=UID)
    # Absent: the role recorded for the principal (User Invited, User Role Changed) stands in.
    roles: list[Annotated[str, Field(pattern=ROLE_ID)]] | None = Field(default=None, max_length=20)


class DecisionBody(_Strict):
    principal: DecisionPrincipal
    permission: Annotated[str, AfterValidator(_permission)]


class ListQuery(PageParams):
    model_config = ConfigDict(extra="forbid")


class RoleView(BaseModel):
    id: str
    name: str
    permissions: list[str]
    builtin: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


class GroupView(BaseModel):
    id: str
    description: str
    members: list[str]
    created_at: datetime
    updated_at: datetime
    updated_by: str


class PolicyView(BaseModel):
    id: str
    role: str
    members: list[str]
    description: str
    created_at: datetime
    updated_at: datetime
    updated_by: str


class PrincipalView(BaseModel):
    uid: str
    status: str
    email: str | None = None
    role: str | None = None
    deactivated: bool = False
    revoked: bool = False
    locked_until: datetime | None = None
    lock_reason: str | None = None
    mfa_failures: int = 0  # failed MFA challenges inside the current window
    tokens_valid_after: datetime | None = None  # tokens signed in before it are refused (sign in again)
    updated_at: datetime | None = None

    @classmethod
    def of(cls, document: dict[str, Any]) -> PrincipalView:
        failures = document.get("mfa_failures")
        return cls.model_validate(
            {
                **{k: v for k, v in document.items() if k in cls.model_fields},
                "mfa_failures": len(failures) if isinstance(failures, list) else 0,
            }
        )


def builtin_view(role_id: str) -> RoleView:
    return RoleView(id=role_id, name=role_id, permissions=sorted(BUILTIN_ROLES[role_id]), builtin=True)


def _json(view: BaseModel) -> dict[str, Any]:
    return view.model_dump(mode="json")


def _actor(ctx: RequestContext) -> Actor:
    return Actor.model_validate(ctx.principal.as_actor())


def _id(ctx: RequestContext, name: str, pattern: str, what: str, *, for_write: bool = False) -> str:
    """A path id: a malformed one is a 422 on writes and a plain 404 on reads and deletes."""
    value = ctx.params[name]
    if re.fullmatch(pattern, value) is None:
        if for_write:
            error = {
                "pointer": f"#/{name}",
                "detail": f"must match {pattern}",
                "type": "string_pattern_mismatch",
            }
            raise validation_failed([{**error, "in": "path"}])
        raise not_found(f"{what} {value}")
    return value


def _put_reply(view: BaseModel, created: bool, location: str) -> Reply:
    if created:
        return Reply(view, status=201, headers={"Location": location})
    return Reply(view)


def build_router(platform: Platform) -> Router:
    service: AccessService = build_service(platform)
    router = Router(platform.catalog.api(API_NAME).slug)

    # --- roles -------------------------------------------------------------------------------------
    @router.get(f"{BASE}/roles", permission="access:read", response=PageOf[RoleView])
    def list_roles(ctx: RequestContext) -> Reply:
        builtins = [_json(builtin_view(r)) for r in sorted(BUILTIN_ROLES)]
        custom = [_json(RoleView.model_validate(d)) for d in service.custom_roles(ctx.tenant_id)]
        return Reply({"items": builtins + custom, "next_cursor": None})

    @router.get(f"{BASE}/roles/{{role_id}}", permission="access:read", response=RoleView)
    def get_role(ctx: RequestContext) -> Reply:
        role_id = _id(ctx, "role_id", ROLE_ID, "Role")
        if role_id in BUILTIN_ROLES:
            return Reply(builtin_view(role_id))
        document = service.role(ctx.tenant_id, role_id)
        if document is None:
            raise not_found(f"Role {role_id}")
        return Reply(RoleView.model_validate(document))

    @router.put(
        f"{BASE}/roles/{{role_id}}",
        permission="access:manage",
        body=RoleBody,
        status=(200, 201),
        response=RoleView,
    )
    def put_role(ctx: RequestContext) -> Reply:
        role_id = _id(ctx, "role_id", ROLE_ID, "Role", for_write=True)
        body = ctx.body(RoleBody)
        document, created = service.put_role(
            ctx.tenant_id, role_id, body.name, body.permissions, _actor(ctx), grantor=ctx.principal
        )
        location = f"/tenants/{ctx.tenant_id}/access/roles/{role_id}"
        return _put_reply(RoleView.model_validate(document), created, location)

    @router.delete(f"{BASE}/roles/{{role_id}}", permission="access:manage", status=204)
    def delete_role(ctx: RequestContext) -> Reply:
        service.delete_role(ctx.tenant_id, _id(ctx, "role_id", ROLE_ID, "Role"), _actor(ctx))
        return Reply(status=204)

    # --- groups ------------------------------------------------------------------------------------
    @router.get(f"{BASE}/groups", permission="access:read", query=ListQuery, response=PageOf[GroupView])
    def list_groups(ctx: RequestContext) -> Reply:
        params = ctx.query(ListQuery)
        groups = service.groups(ctx.tenant_id)
        page = paginate(groups, groups, "id", params)
        items = [_json(GroupView.model_validate(s.to_dict())) for s in page.snapshots]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    @router.get(f"{BASE}/groups/{{group_id}}", permission="access:read", response=GroupView)
    def get_group(ctx: RequestContext) -> Reply:
        group_id = _id(ctx, "group_id", OBJECT_ID, "Group")
        document = service.group(ctx.tenant_id, group_id)
        if document is None:
            raise not_found(f"Group {group_id}")
        return Reply(GroupView.model_validate(document))

    @router.put(
        f"{BASE}/groups/{{group_id}}",
        permission="access:manage",
        body=GroupBody,
        status=(200, 201),
        response=GroupView,
    )
    def put_group(ctx: RequestContext) -> Reply:
        group_id = _id(ctx, "group_id", OBJECT_ID, "Group", for_write=True)
        body = ctx.body(GroupBody)
        document, created = service.put_group(
            ctx.tenant_id, group_id, body.description, body.members, _actor(ctx), grantor=ctx.principal
        )
        location = f"/tenants/{ctx.tenant_id}/access/groups/{group_id}"
        return _put_reply(GroupView.model_validate(document), created, location)

    @router.delete(f"{BASE}/groups/{{group_id}}", permission="access:manage", status=204)
    def delete_group(ctx: RequestContext) -> Reply:
        service.delete_group(ctx.tenant_id, _id(ctx, "group_id", OBJECT_ID, "Group"))
        return Reply(status=204)

    # --- policies ----------------------------------------------------------------------------------
    @router.get(f"{BASE}/policies", permission="access:read", query=ListQuery, response=PageOf[PolicyView])
    def list_policies(ctx: RequestContext) -> Reply:
        params = ctx.query(ListQuery)
        policies = service.policies(ctx.tenant_id)
        page = paginate(policies, policies, "id", params)
        items = [_json(PolicyView.model_validate(s.to_dict())) for s in page.snapshots]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    @router.get(f"{BASE}/policies/{{policy_id}}", permission="access:read", response=PolicyView)
    def get_policy(ctx: RequestContext) -> Reply:
        policy_id = _id(ctx, "policy_id", OBJECT_ID, "Policy")
        document = service.policy(ctx.tenant_id, policy_id)
        if document is None:
            raise not_found(f"Policy {policy_id}")
        return Reply(PolicyView.model_validate(document))

    @router.put(
        f"{BASE}/policies/{{policy_id}}",
        permission="access:manage",
        body=PolicyBody,
        status=(200, 201),
        response=PolicyView,
    )
    def put_policy(ctx: RequestContext) -> Reply:
        policy_id = _id(ctx, "policy_id", OBJECT_ID, "Policy", for_write=True)
        body = ctx.body(PolicyBody)
        document, created = service.put_policy(
            ctx.tenant_id,
            policy_id,
            body.role,
            body.members,
            body.description,
            _actor(ctx),
            grantor=ctx.principal,
        )
        location = f"/tenants/{ctx.tenant_id}/access/policies/{policy_id}"
        return _put_reply(PolicyView.model_validate(document), created, location)

    @router.delete(f"{BASE}/policies/{{policy_id}}", permission="access:manage", status=204)
    def delete_policy(ctx: RequestContext) -> Reply:
        service.delete_policy(ctx.tenant_id, _id(ctx, "policy_id", OBJECT_ID, "Policy"), _actor(ctx))
        return Reply(status=204)

    # --- principals --------------------------------------------------------------------------------
    @router.get(f"{BASE}/principals/{{uid}}", permission="access:read", response=PrincipalView)
    def get_principal(ctx: RequestContext) -> Reply:
        uid = _id(ctx, "uid", UID, "Principal")
        document = service.principal(ctx.tenant_id, uid)
        if document is None:
            raise not_found(f"Principal {uid}")
        return Reply(PrincipalView.of(document))

    @router.post(f"{BASE}/principals/{{uid}}/restore", permission="access:manage", response=PrincipalView)
    def restore_principal(ctx: RequestContext) -> Reply:
        uid = _id(ctx, "uid", UID, "Principal")
        return Reply(PrincipalView.of(service.restore_principal(ctx.tenant_id, uid, _actor(ctx))))

    # --- decisions ---------------------------------------------------------------------------------
    @router.post(f"{BASE}/decisions", permission="access:decide", body=DecisionBody)
    def decisions(ctx: RequestContext) -> Reply:
        body = ctx.body(DecisionBody)
        decision, version = service.decide(
            ctx.tenant_id, body.principal.uid, body.principal.roles, body.permission
        )
        return Reply({"allowed": decision.allowed, "reason": decision.reason, "version": version})

    return router
