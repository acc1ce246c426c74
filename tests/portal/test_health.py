"""An admin reads the workspace's health in the portal: the score with the factors that make it, what
moved it, a chart of its history; then previews a changed scoring model and saves it, and a save
over someone else's change is refused with a plain message."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from emulators.suite import Suite
from tests.conftest import Api, eventually
from tests.portal.conftest import Workspace, signed_in_admin


def test_score_explanation_history_chart_and_the_model_editor_with_preview(
    clean: Suite, workspace: Workspace, new_page: Callable[..., Any]
) -> None:
    health = Api(clean.function_url("customer_health_api"), workspace.operator.token)
    base = f"/tenants/{workspace.id}/health"
    page = signed_in_admin(clean, workspace, new_page)
    page.get_by_role("link", name="Health").click()
    card = page.get_by_test_id("health-score")
    changes = card.get_by_test_id("health-change")

    def shown_as_the_api_holds() -> bool:
        # Onboarding may still move the score: compare the page with what the API answered after it.
        page.reload()
        expect(changes.first).to_be_visible()
        history = health.get(f"{base}/history").json()["items"]
        score = health.get(base).json()
        points = (card.get_by_test_id("score-line").get_attribute("points") or "").split(" ")
        return (
            card.locator(".big").text_content() == str(score["score"])
            and card.get_by_test_id("health-factor").count() == len(score["factors"])
            and changes.count() == len(history) == len(points)  # one chart point a change
            and f"→ {history[0]['score']}" in (changes.first.text_content() or "")
        )

    eventually(shown_as_the_api_holds, timeout=60, what="the page showing the API's score and history")
    score = health.get(base).json()
    model = health.get(f"{base}/model").json()
    proposed = {
        "window_days": 10,
        "factors": model["factors"],
        "grades": model["grades"],
        "publish_delta": model["publish_delta"],
    }
    editor = page.get_by_role("form", name="Scoring model")
    expect(editor.get_by_label("Model (JSON)")).to_have_value(re.compile('"window_days"'))
    editor.get_by_label("Model (JSON)").fill(json.dumps(proposed))
    editor.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("model-preview")).to_contain_text(f"Workspace: {score['score']} (")
    assert health.get(f"{base}/model").json()["version"] == model["version"]  # a preview saves nothing

    editor.get_by_role("button", name="Save model").click()
    expect(
        page.get_by_role("status").filter(has_text=f"Model version {model['version'] + 1} saved")
    ).to_be_visible()
    assert health.get(f"{base}/model").json()["window_days"] == 10

    # Someone else saves meanwhile: this page's next save is refused, and says why.
    other = health.put(
        f"{base}/model",
        json={**proposed, "window_days": 20},
        headers={"If-Match": f'"{model["version"] + 1}"'},
    )
    assert other.status_code == 200, other.text
    editor.get_by_role("button", name="Save model").click()
    expect(page.get_by_role("alert").filter(has_text="Someone else changed the model")).to_be_visible()
    assert health.get(f"{base}/model").json()["window_days"] == 20
