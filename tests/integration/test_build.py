"""`make build` output: every function's folder imports on its own, in a clean interpreter, the way
Cloud Functions loads it (functions-framework, the folder as the only source), and builds no client
at import time (cold start)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from functions.build import ManifestEntry, build
from functions.manifest import NEED_KINDS, discover

PROBE = """
import json, sys
import functions_framework
app = functions_framework.create_app(sys.argv[1], "main.py", "http")
import shared.clients as clients
getters = ("firestore_client", "publisher", "tasks_client", "secrets_client", "firebase_app")
created = [name for name in getters if getattr(clients, name).cache_info().currsize]
roots = tuple(sys.argv[2] + part for part in ("shared", "functions", "schemas", "emulators"))
modules = list(sys.modules.values())
repo_modules = [m for m in modules if (getattr(m, "__file__", None) or "").startswith(roots)]
print(json.dumps({"routes": [str(r) for r in app.url_map.iter_rules()], "clients": created,
                  "leaked": [m.__name__ for m in repo_modules]}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ManifestEntry]]:
    out = tmp_path_factory.mktemp("build")
    return out, build(out)


def test_the_manifest_lists_every_function_with_a_content_hash(
    built: tuple[Path, list[ManifestEntry]],
) -> None:
    out, manifest = built
    assert [entry["name"] for entry in manifest] == [spec.name for spec in discover()]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert all(len(entry["sha256"]) == 64 for entry in manifest)
    assert len({entry["sha256"] for entry in manifest}) == len(manifest)


def test_the_manifest_carries_calls_and_needs(built: tuple[Path, list[ManifestEntry]]) -> None:
    """CALLS and NEEDS of each main.py, per function: what Terraform grants and lets in."""
    _, manifest = built
    kinds = {entry["name"]: entry["trigger"].split(":", 1)[0] for entry in manifest}
    for entry, spec in zip(manifest, discover(), strict=True):
        assert entry["calls"] == list(spec.calls) and entry["needs"] == list(spec.needs)
        assert all(kinds[callee] == "http" and callee != entry["name"] for callee in entry["calls"])
        assert set(entry["needs"]) <= set(NEED_KINDS)
    by_name = {entry["name"]: entry for entry in manifest}
    # User Management takes and releases the Tenant API's seats and administers Identity Platform.
    assert by_name["user_management_api"]["calls"] == ["tenant_api"]
    assert by_name["user_management_api"]["needs"] == ["identity-admin"]
    assert by_name["tenant_api"]["calls"] == [] and by_name["tenant_api"]["needs"] == []
    # The Integration API manages (HTTP) and reads (tasks) its webhook signing secrets; fan-out does not.
    assert by_name["integration_api"]["needs"] == ["webhook-secrets"]
    assert by_name["integration_api_tasks"]["needs"] == ["webhook-secrets"]
    assert by_name["integration_api_events"]["needs"] == []


@pytest.mark.parametrize(
    ("declarations", "error"),
    [
        ('CALLS = {"a": ["b_events"]}', "a 'pubsub-push' function"),
        ('CALLS = {"a": ["nowhere"]}', "no function"),
        ('CALLS = {"a": ["a"]}', "itself"),
        ('CALLS = {"b_events": "a"}', "list of names"),
        ('CALLS = {"other": ["a"]}', "not in this package's TRIGGERS"),
        ('NEEDS = {"a": ["owner"]}', "unknown NEEDS"),
        ("NEEDS = [1]", "dict literal"),
    ],
)
def test_calls_and_needs_are_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, declarations: str, error: str
) -> None:
    import functions.manifest as manifest

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "main.py").write_text(
        f'TRIGGERS = {{"a": "http", "b_events": "pubsub-push"}}\n{declarations}\n', encoding="utf-8"
    )
    monkeypatch.setattr(manifest, "FUNCTIONS_DIR", tmp_path)
    with pytest.raises(ValueError, match=re.escape(error)):
        manifest.discover()


def test_calls_and_needs_are_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import functions.manifest as manifest

    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "main.py").write_text('TRIGGERS = {"api": "http"}\n', encoding="utf-8")
    (tmp_path / "caller").mkdir()
    (tmp_path / "caller" / "main.py").write_text(
        'TRIGGERS = {"caller": "tasks"}\nCALLS = {"caller": ["api", "api"]}\n'
        'NEEDS = {"caller": ["identity-admin"]}\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(manifest, "FUNCTIONS_DIR", tmp_path)
    specs = {spec.name: spec for spec in manifest.discover()}
    assert (specs["api"].calls, specs["api"].needs) == ((), ())
    assert (specs["caller"].calls, specs["caller"].needs) == (("api",), ("identity-admin",))


def test_rebuilding_unchanged_sources_keeps_the_hashes(
    built: tuple[Path, list[ManifestEntry]], tmp_path: Path
) -> None:
    _, first = built
    assert [e["sha256"] for e in build(tmp_path)] == [e["sha256"] for e in first]


@pytest.mark.parametrize("spec", discover(), ids=lambda spec: spec.name)
def test_each_artifact_imports_alone_and_creates_no_client(
    built: tuple[Path, list[ManifestEntry]], spec: object
) -> None:
    out, _ = built
    name = spec.name  # type: ignore[attr-defined]
    folder = out / name
    assert {p.name for p in folder.iterdir()} >= {
        "main.py",
        "shared",
        "functions",
        "schemas",
        "requirements.txt",
    }
    repo = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    result = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, '.');" + PROBE, name, repo + os.sep],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["clients"] == []
    assert report["leaked"] == [], "the artifact imported code from the repository instead of its own folder"
    requirements = (folder / "requirements.txt").read_text()
    assert "functions-framework" in requirements and "google-cloud-firestore" in requirements
