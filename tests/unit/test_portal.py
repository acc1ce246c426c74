"""The portal function (what it serves and with which headers), the invitation mail's own token in the
User Management domain, and the portal's copy of the built-in roles."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import flask
import pytest

from functions.portal.assets import build_handler
from functions.user_management_api.domain import (
    Invitation,
    InvitationGone,
    InvitationNotFound,
    InvitationStatus,
    InvitationUsed,
    hash_token,
    make_token,
)
from functions.user_management_api.routes import InvitationView
from shared.authz import BUILTIN_ROLES
from shared.config import Settings
from shared.platform import Platform

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def static(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(
        '<script type="module" src="/portal/assets/index-abc123.js"></script>'
    )
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    return tmp_path


def serve(static: Path, path: str, method: str = "GET", emulator: str | None = None) -> flask.Response:
    settings = Settings(project_id="demo-portal", identity_api_key="browser-key")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
        if emulator:
            patch.setenv("FIREBASE_AUTH_EMULATOR_HOST", emulator)
        handler = build_handler(Platform(settings), static)
    with flask.Flask(__name__).test_request_context(path, method=method):
        return handler(flask.request)


def test_index_is_never_cached_and_hashed_assets_are_cached_for_a_year(static: Path) -> None:
    index = serve(static, "/")
    assert index.status_code == 200 and index.headers["Cache-Control"] == "no-cache"
    assert index.content_type.startswith("text/html")
    asset = serve(static, "/assets/index-abc123.js")
    assert asset.status_code == 200
    assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert asset.content_type.split(";")[0] in ("text/javascript", "application/javascript")


def test_every_answer_carries_a_strict_content_security_policy(static: Path) -> None:
    for path in ("/", "/assets/index-abc123.js", "/config.json", "/missing"):
        response = serve(static, path)
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_runtime_config_names_the_auth_emulator_only_when_there_is_one(static: Path) -> None:
    local = serve(static, "/config.json", emulator="127.0.0.1:9099")
    assert local.headers["Cache-Control"] == "no-store"
    assert json.loads(local.get_data()) == {
        "apiBase": "",
        "projectId": "demo-portal",
        "apiKey": "browser-key",
        "authEmulator": "http://127.0.0.1:9099",
    }
    assert "http://127.0.0.1:9099" in local.headers["Content-Security-Policy"]
    deployed = serve(static, "/config.json")
    assert json.loads(deployed.get_data())["authEmulator"] is None
    assert "127.0.0.1" not in deployed.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "path", ["/assets/../index.html", "/assets/nope.js", "/main.py", "/static/index.html"]
)
def test_nothing_but_the_build_is_served(static: Path, path: str) -> None:
    assert serve(static, path).status_code == 404


def test_only_reads_are_served_and_a_missing_build_says_so(static: Path, tmp_path: Path) -> None:
    assert serve(static, "/", method="POST").status_code == 405
    missing = serve(tmp_path / "nothing", "/")
    assert missing.status_code == 503 and b"make portal" in missing.get_data()


def test_the_portal_mirrors_the_built_in_roles() -> None:
    """Menus and buttons follow permissions: the portal's table must be the APIs' table."""
    mirrored = json.loads((ROOT / "portal" / "src" / "roles.json").read_text(encoding="utf-8"))
    assert {role: set(perms) for role, perms in mirrored.items()} == {
        role: set(perms) for role, perms in BUILTIN_ROLES.items()
    }


# --- the invitation mail's token --------------------------------------------------------------------
def invitation(token_hash: str | None = "h-api") -> Invitation:
    return Invitation.issue(
        "inv_00000000000000000001", "t1", "u1", "a@x.example", "member", 72, token_hash, "op", NOW
    )


def test_the_mail_token_works_beside_the_token_the_inviting_call_answered() -> None:
    api_token = make_token("t1", "inv_00000000000000000001", "api-secret")
    mail_token = make_token("t1", "inv_00000000000000000001", "mail-secret")
    invite = invitation(hash_token(api_token))
    invite.issue_mail_token(hash_token(mail_token), NOW + timedelta(minutes=1))
    invite.check_acceptable(hash_token(api_token), NOW)
    invite.check_acceptable(hash_token(mail_token), NOW)
    # A second mail replaces the first mail's token, not the answered one.
    invite.issue_mail_token(hash_token("newer"), NOW)
    with pytest.raises(InvitationNotFound):
        invite.check_acceptable(hash_token(mail_token), NOW)
    invite.check_acceptable(hash_token(api_token), NOW)


def test_an_imported_invitation_is_accepted_with_its_mail_token() -> None:
    invite = invitation(None)
    invite.issue_mail_token(hash_token("mail"), NOW)
    invite.check_acceptable(hash_token("mail"), NOW)


def test_a_resend_makes_the_earlier_mail_links_stop_working() -> None:
    invite = invitation()
    invite.issue_mail_token(hash_token("mail"), NOW)
    invite.resend(hash_token("resent"), NOW)
    assert invite.mail_token_hash is None
    with pytest.raises(InvitationNotFound):
        invite.check_acceptable(hash_token("mail"), NOW)


def test_no_mail_token_for_an_invitation_that_cannot_be_accepted() -> None:
    revoked = invitation()
    revoked.revoke(NOW)
    with pytest.raises(InvitationGone) as gone:
        revoked.issue_mail_token(hash_token("mail"), NOW)
    assert gone.value.status is InvitationStatus.REVOKED
    expired = invitation()
    with pytest.raises(InvitationGone):
        expired.issue_mail_token(hash_token("mail"), NOW + timedelta(hours=73))
    accepted = invitation()
    accepted.accept(NOW)
    with pytest.raises(InvitationUsed):
        accepted.issue_mail_token(hash_token("mail"), NOW)


def test_the_invitation_view_shows_no_token_hash() -> None:
    invite = invitation()
    invite.issue_mail_token(hash_token("mail"), NOW)
    shown = InvitationView.of(invite, NOW).model_dump(mode="json")
    assert "h-api" not in json.dumps(shown) and hash_token("mail") not in json.dumps(shown)
