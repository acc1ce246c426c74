"""The Workflow API's pure rules: conditions, validation, firing and the loop guard, action planning,
dry runs and versions."""

from __future__ import annotations

from typing import Any

import pytest

from functions.workflow_api import domain
from functions.workflow_api.builtins import BUILTINS
from functions.workflow_api.domain import EventView, Refused
from shared.catalog import load_catalog

CONTACT_UPDATED = {
    "contact_id": "con_1",
    "changes": {
        "lifecycle_stage": {"before": "lead", "after": "customer"},
        "job_title": {"before": None, "after": "CTO"},
    },
    "source": "manual",
    "actor": {"type": "user", "id": "usr_1", "email": "a@b.example"},
}

WON = {
    "trigger": "Contact Updated",
    "conditions": {"op": "changed", "field": "lifecycle_stage", "to": "customer"},
    "steps": [
        {"name": "tag", "type": "update_contact", "changes": {"tags": ["customer"]}},
        {"name": "hook", "type": "webhook", "url": "https://hooks.example/won"},
    ],
}


def updated(data: dict[str, Any] | None = None, event_id: str = "e1") -> EventView:
    return EventView(event_id, "Contact Updated", "con_1", data or CONTACT_UPDATED, "/apis/customer-data-api")


def test_the_triggers_are_exactly_what_the_workflow_api_consumes() -> None:
    consumed = {e.name for e in load_catalog().consumed_by("Workflow API")}
    assert set(domain.TRIGGERS) == consumed


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ({"path": "source", "op": "eq", "value": "manual"}, True),
        ({"path": "source", "op": "eq", "value": "api"}, False),
        ({"path": "source", "op": "ne", "value": "api"}, True),
        ({"path": "missing", "op": "ne", "value": "api"}, True),
        ({"path": "missing", "op": "eq", "value": None}, False),
        ({"path": "actor.type", "op": "in", "value": ["user", "service"]}, True),
        ({"path": "actor.email", "op": "contains", "value": "@b."}, True),
        ({"path": "changes.lifecycle_stage.after", "op": "gte", "value": "customer"}, True),
        ({"path": "changes.lifecycle_stage.after", "op": "gt", "value": "customer"}, False),
        ({"path": "changes.lifecycle_stage.after", "op": "lt", "value": 3}, False),
        ({"path": "actor.id", "op": "exists"}, True),
        ({"path": "actor.nope", "op": "exists"}, False),
        ({"path": "actor.nope", "op": "exists", "value": False}, True),
        ({"all": [{"path": "source", "op": "eq", "value": "manual"}, {"path": "x", "op": "exists"}]}, False),
        (
            {"any": [{"path": "source", "op": "eq", "value": "api"}, {"path": "contact_id", "op": "exists"}]},
            True,
        ),
        ({"not": {"path": "source", "op": "eq", "value": "manual"}}, False),
    ],
)
def test_comparisons_and_groups(condition: dict[str, Any], holds: bool) -> None:
    assert domain.evaluate(condition, CONTACT_UPDATED) is holds


def test_numbers_compare_and_list_items_are_addressed_by_index() -> None:
    data = {"score": 58, "emails": ["a@x.example", "b@x.example"], "flag": True}
    assert domain.evaluate({"path": "score", "op": "lt", "value": 60}, data)
    assert not domain.evaluate({"path": "score", "op": "gte", "value": 60}, data)
    assert domain.evaluate({"path": "emails.1", "op": "eq", "value": "b@x.example"}, data)
    assert domain.evaluate({"path": "emails", "op": "contains", "value": "a@x.example"}, data)
    assert not domain.evaluate({"path": "flag", "op": "gt", "value": 0}, data)  # a bool is no number


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ({"op": "changed", "field": "lifecycle_stage"}, True),
        ({"op": "changed", "field": "lifecycle_stage", "to": "customer"}, True),
        ({"op": "changed", "field": "lifecycle_stage", "from": "lead", "to": "customer"}, True),
        ({"op": "changed", "field": "lifecycle_stage", "from": "opportunity", "to": "customer"}, False),
        ({"op": "changed", "field": "lifecycle_stage", "to": "lead"}, False),
        ({"op": "changed", "field": "job_title", "from": None}, True),
        ({"op": "changed", "field": "emails"}, False),
    ],
)
def test_changed_from_and_to(condition: dict[str, Any], holds: bool) -> None:
    assert domain.evaluate(condition, CONTACT_UPDATED) is holds


def test_a_valid_definition_and_every_builtin_validate() -> None:
    assert domain.validate(WON) == []
    for spec in BUILTINS.values():
        assert domain.validate(spec["definition"], builtin=True) == []


@pytest.mark.parametrize(
    ("definition", "pointer"),
    [
        ({**WON, "trigger": "Tenant Created"}, "#/trigger"),
        ({**WON, "conditions": {"path": "x", "op": "like", "value": 1}}, "#/conditions/op"),
        ({**WON, "conditions": {"path": "x", "op": "in", "value": 1}}, "#/conditions/value"),
        ({**WON, "conditions": {"path": "x", "op": "eq"}}, "#/conditions/value"),
        ({**WON, "conditions": {"all": []}}, "#/conditions"),
        ({**WON, "conditions": {"all": [{"op": "changed"}]}}, "#/conditions/all/0/field"),
        ({**WON, "steps": []}, "#/steps"),
        ({**WON, "steps": [{"name": "a", "type": "email"}]}, "#/steps/0/type"),
        ({**WON, "steps": [{"name": "a", "type": "privacy_request"}]}, "#/steps/0/type"),
        ({**WON, "steps": [{"name": "A b", "type": "wait", "seconds": 5}]}, "#/steps/0/name"),
        ({**WON, "steps": [{"name": "a", "type": "wait", "seconds": 0}]}, "#/steps/0/seconds"),
        ({**WON, "steps": [{"name": "a", "type": "notify", "message": ""}]}, "#/steps/0/message"),
        ({**WON, "steps": [{"name": "a", "type": "update_contact", "changes": {}}]}, "#/steps/0/changes"),
        ({**WON, "steps": [{"name": "a", "type": "webhook", "url": "ftp://x"}]}, "#/steps/0/url"),
        ({**WON, "steps": [{"name": "a", "type": "wait", "seconds": 5, "extra": 1}]}, "#/steps/0"),
        (
            {
                **WON,
                "steps": [
                    {"name": "a", "type": "wait", "seconds": 5},
                    {"name": "a", "type": "wait", "seconds": 5},
                ],
            },
            "#/steps/1/name",
        ),
    ],
)
def test_invalid_definitions_name_the_field(definition: dict[str, Any], pointer: str) -> None:
    assert pointer in [e.pointer for e in domain.validate(definition)]


def test_a_branch_may_only_jump_forward_so_a_run_cannot_cycle() -> None:
    steps: list[dict[str, Any]] = [
        {"name": "first", "type": "notify", "message": "x"},
        {"name": "check", "type": "branch", "condition": {"path": "a", "op": "exists"}, "then": "first"},
        {"name": "last", "type": "notify", "message": "y"},
    ]
    assert "#/steps/1/then" in [e.pointer for e in domain.validate({**WON, "steps": steps})]
    steps[1] = {**steps[1], "then": "last", "else": "end"}
    assert domain.validate({**WON, "steps": steps}) == []


def test_a_workflow_fires_on_its_trigger_when_its_conditions_hold() -> None:
    assert domain.judge("wfl_1", WON, updated()) == domain.Verdict(True, "matched")
    created = EventView("e2", "Contact Created", "con_1", CONTACT_UPDATED)
    assert domain.judge("wfl_1", WON, created).reason == "other trigger"
    lead = {**CONTACT_UPDATED, "changes": {"lifecycle_stage": {"before": "customer", "after": "lead"}}}
    assert domain.judge("wfl_1", WON, updated(lead)).reason == "conditions not met"


def test_loop_guard_a_workflow_never_fires_on_its_own_write_but_another_one_does() -> None:
    own = {**CONTACT_UPDATED, "source": "workflow", "actor": {"type": "service", "id": "workflow:wfl_1"}}
    event = updated(own)
    assert event.workflow_caused == "wfl_1"
    assert domain.judge("wfl_1", WON, event) == domain.Verdict(False, "caused by itself")
    assert domain.judge("wfl_2", WON, event, depth=2).fires


def test_loop_guard_a_chain_across_workflows_stops_at_the_hop_limit() -> None:
    by_other = updated({**CONTACT_UPDATED, "actor": {"type": "service", "id": "workflow:wfl_9"}})
    assert domain.depth_of(updated(), None) == 1
    assert domain.depth_of(by_other, None) == 2  # the causing run's depth was not recorded: at least 1
    depth = 1
    for _ in range(domain.MAX_DEPTH - 1):
        depth = domain.depth_of(by_other, depth)
    assert depth == domain.MAX_DEPTH and domain.judge("wfl_1", WON, by_other, depth).fires
    deeper = domain.depth_of(by_other, depth)
    assert domain.judge("wfl_1", WON, by_other, deeper) == domain.Verdict(False, "hop limit")


def test_run_ids_are_one_per_workflow_and_event() -> None:
    assert domain.run_id("wfl_1", "/s", "e1") == domain.run_id("wfl_1", "/s", "e1")
    assert (
        len(
            {
                domain.run_id("wfl_1", "/s", "e1"),
                domain.run_id("wfl_2", "/s", "e1"),
                domain.run_id("wfl_1", "/s", "e2"),
            }
        )
        == 3
    )


def test_templates_render_values_and_whole_values() -> None:
    document = domain.step_document(CONTACT_UPDATED, {"tag": {"status": 200}})
    assert (
        domain.render("{{contact_id}} is {{ changes.lifecycle_stage.after }}", document)
        == "con_1 is customer"
    )
    assert domain.render("{{changes.lifecycle_stage}}", document) == {"before": "lead", "after": "customer"}
    assert domain.render({"x": ["{{$steps.tag.status}}", "{{nope}}"]}, document) == {"x": [200, None]}
    assert domain.render("[{{nope}}]", document) == "[]"


def test_a_plan_follows_branches_and_renders_actions() -> None:
    definition = {
        "trigger": "Contact Updated",
        "steps": [
            {
                "name": "is-cto",
                "type": "branch",
                "condition": {"path": "changes.job_title.after", "op": "eq", "value": "CTO"},
                "else": "tell",
            },
            {
                "name": "tag",
                "type": "update_contact",
                "changes": {"tags": ["exec"], "lifecycle_stage": "{{changes.lifecycle_stage.after}}"},
            },
            {"name": "pause", "type": "wait", "seconds": 60},
            {
                "name": "stop",
                "type": "branch",
                "condition": {"path": "source", "op": "eq", "value": "manual"},
                "then": "end",
            },
            {"name": "tell", "type": "notify", "message": "{{contact_id}} changed"},
        ],
    }
    assert domain.validate(definition) == []
    cto = [(p.step, p.action) for p in domain.plan(definition, CONTACT_UPDATED)]
    assert cto == [
        ("is-cto", {"type": "branch", "next": "following"}),
        (
            "tag",
            {
                "type": "update_contact",
                "contact_id": "con_1",
                "changes": {"tags": ["exec"], "lifecycle_stage": "customer"},
            },
        ),
        ("pause", {"type": "wait", "seconds": 60}),
        ("stop", {"type": "branch", "next": "end"}),
    ]
    other = {**CONTACT_UPDATED, "changes": {"job_title": {"before": None, "after": "CFO"}}}
    assert [(p.step, p.action) for p in domain.plan(definition, other)] == [
        ("is-cto", {"type": "branch", "next": "tell"}),
        ("tell", {"type": "notify", "channel": "in_app", "to": None, "message": "con_1 changed"}),
    ]


def test_a_dry_run_reports_what_would_fire_and_why_the_rest_would_not() -> None:
    lead = {**CONTACT_UPDATED, "changes": {"lifecycle_stage": {"before": "customer", "after": "lead"}}}
    own = {**CONTACT_UPDATED, "actor": {"type": "service", "id": "workflow:wfl_1"}}
    events = [
        (updated(event_id="e1"), "2026-11-20T10:00:00Z"),
        (updated(lead, event_id="e2"), "2026-11-21T10:00:00Z"),
        (updated(own, event_id="e3"), "2026-11-22T10:00:00Z"),
        (EventView("e4", "Contact Created", "con_2", {}), "2026-11-23T10:00:00Z"),
    ]
    result = domain.dry_run("wfl_1", WON, events)
    assert result.examined == 4
    assert [m.event_id for m in result.matched] == ["e1"]
    assert [p.action["type"] for p in result.matched[0].actions] == ["update_contact", "webhook"]
    assert result.skipped == {"conditions not met": 1, "caused by itself": 1}


def test_editing_goes_to_the_draft_or_a_new_draft_never_to_the_active_version() -> None:
    assert domain.edit_target({}) == (1, True)
    assert domain.edit_target({1: "draft"}) == (1, False)
    assert domain.edit_target({1: "active"}) == (2, True)
    assert domain.edit_target({1: "archived", 2: "active", 3: "draft"}) == (3, False)


def test_activating_archives_the_previous_active_version() -> None:
    assert domain.activation({1: "draft"}, None) == {1: "active"}
    assert domain.activation({1: "active", 2: "draft"}, None) == {1: "archived", 2: "active"}
    assert domain.activation({1: "archived", 2: "active"}, 1) == {2: "archived", 1: "active"}
    with pytest.raises(Refused) as no_draft:
        domain.activation({1: "active"}, None)
    assert no_draft.value.kind == "no-draft"
    with pytest.raises(Refused) as again:
        domain.activation({1: "active"}, 1)
    assert again.value.kind == "already-active"
    with pytest.raises(Refused) as unknown:
        domain.activation({1: "draft"}, 7)
    assert unknown.value.kind == "unknown-version"


def test_archiving_needs_an_active_version() -> None:
    assert domain.archival({1: "archived", 2: "active", 3: "draft"}) == {2: "archived"}
    with pytest.raises(Refused):
        domain.archival({1: "draft"})
