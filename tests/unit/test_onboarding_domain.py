"""Onboarding, pure parts: run ids, the seat's user id, what another API's answer means, progress."""

from __future__ import annotations

import pytest

from functions.onboarding_api import domain
from functions.onboarding_api.domain import Answer, Reply


def test_one_onboarding_run_per_tenant_and_one_check_per_reactivation() -> None:
    assert domain.onboarding_run_id("t1") == domain.onboarding_run_id("t1")
    assert domain.onboarding_run_id("t1") != domain.onboarding_run_id("t2")
    assert domain.reonboarding_run_id("t1", "e1") != domain.reonboarding_run_id("t1", "e2")
    assert domain.onboarding_run_id("t1").startswith("onb_")
    assert domain.reonboarding_run_id("t1", "e1").startswith("reo_")


def test_the_seat_is_reserved_under_the_user_id_user_management_gives_the_invited_email() -> None:
    # The same id whatever the case of the email, as User Management lower-cases it.
    assert domain.seat_user_id("t1", "Boss@Acme.example") == domain.seat_user_id("t1", "boss@acme.example")
    assert domain.seat_user_id("t1", "boss@acme.example") != domain.seat_user_id("t2", "boss@acme.example")
    assert domain.seat_user_id("t1", "boss@acme.example").startswith("u_")


def test_the_user_id_matches_the_user_management_api() -> None:
    from functions.user_management_api.domain import user_id_for

    assert domain.seat_user_id("tnt_1", "Maya@Acme.example") == user_id_for("tnt_1", "maya@acme.example")


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        (Reply(200, "application/json", {"items": []}), Answer.PRESENT),
        (Reply(201, "application/json; charset=utf-8", {}), Answer.PRESENT),
        (Reply(404, "application/problem+json", {"type": "x/not-found"}), Answer.MISSING),
        (Reply(503, "application/problem+json", {}), Answer.UNAVAILABLE),
        (Reply(500, "application/json", {}), Answer.UNAVAILABLE),
        (Reply(404, "text/html; charset=UTF-8"), Answer.ABSENT_API),  # no such function deployed
        (Reply(200, "text/plain; charset=utf-8", None), Answer.ABSENT_API),  # the local host's fallback
    ],
)
def test_answers_of_other_apis(reply: Reply, answer: Answer) -> None:
    assert domain.classify(reply) is answer


def test_items_of_a_list_answer_only() -> None:
    assert domain.items({"items": [1, 2]}) == [1, 2]
    assert domain.items({"items": "no"}) == []
    assert domain.items(None) == []


def test_progress_counts_done_and_skipped_steps() -> None:
    run = {
        "status": "running",
        "current_step": "c",
        "steps": [{"status": "done"}, {"status": "skipped"}, {"status": "running"}, {"status": "pending"}],
    }
    assert domain.progress(run) == domain.Progress("running", 50, "c", 2, 4)
    finished = {**run, "status": "succeeded", "current_step": None}
    assert domain.progress(finished).percent == 100
    assert domain.progress(finished).current_step is None
    assert domain.progress({"status": "pending", "steps": []}).percent == 0


def test_playbooks_have_unique_steps() -> None:
    for steps in domain.PLAYBOOKS.values():
        assert len(set(steps)) == len(steps)
    assert set(domain.PLAYBOOKS) == set(domain.TRIGGERS)
