"""The delivery pipeline (cloudbuild.yaml, pipeline/), checked and run locally as far as it goes
without the cloud: its steps name real make targets and scripts, it builds once, uploads once, plans
every environment and promotes dev -> staging -> prod from the same artifact, checks drift with
`plan -detailed-exitcode`; `make build` runs with Python alone; the artifact is packed reproducibly."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from functions.build import build

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "pipeline"
FILES = {
    "ci": ROOT / "cloudbuild.yaml",
    "promote": PIPELINE / "promote.yaml",
    "drift": PIPELINE / "drift.yaml",
}
ENVIRONMENTS = ("dev", "staging", "prod")


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(FILES[name].read_text(encoding="utf-8"))
    return document


def commands(step: dict[str, Any]) -> str:
    """A step's command line: its entrypoint and arguments."""
    return " ".join([str(step.get("entrypoint", "")), *(str(a) for a in step.get("args", []))])


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z-]*):", text, re.M))


def test_every_step_names_a_real_make_target_or_script() -> None:
    targets = make_targets()
    used: set[str] = set()
    for name in FILES:
        steps = load(name)["steps"]
        assert steps, name
        for step in steps:
            line = commands(step)
            if step.get("entrypoint") == "make":
                wanted = [str(a) for a in step["args"] if "=" not in str(a)]
            else:
                wanted = re.findall(r"\bmake ([a-z][a-z-]*)", line)
            for target in wanted:
                assert target in targets, f"{FILES[name].name}: step {step['id']} runs make {target}"
                used.add(target)
            for script in re.findall(r"pipeline/([a-z]+\.sh)", line):
                path = PIPELINE / script
                assert path.is_file() and path.stat().st_mode & 0o111, f"{script} is an executable file"
    assert {"setup", "lint", "test", "build"} <= used


def test_ci_tests_builds_once_uploads_once_and_plans_every_environment() -> None:
    ci = load("ci")
    ids = [step["id"] for step in ci["steps"]]
    assert ids == [
        "setup",
        "lint",
        "test",
        "build",
        "upload",
        "image",
        "push",
        "fetch",
        *(f"plan-{env}" for env in ENVIRONMENTS),
    ]
    steps = {step["id"]: step for step in ci["steps"]}
    # `make build` on a stock Python image: nothing else is needed to build.
    assert steps["build"]["name"].startswith("python:3.11")
    assert "make build" in commands(steps["build"])
    uploads = [
        (name, s["id"]) for name in FILES for s in load(name)["steps"] if "artifact.sh upload" in commands(s)
    ]
    assert uploads == [("ci", "upload")], "the artifact is uploaded once, by the CI stage"
    for env in ENVIRONMENTS:
        assert f"/workspace/artifact/pipeline/terraform.sh plan {env} " in commands(steps[f"plan-{env}"])
    for name in ("promote", "drift"):
        assert not any("make build" in commands(s) for s in load(name)["steps"]), f"{name} never rebuilds"
    # Cloud Build substitutes $NAME itself: shell variables are written $$NAME.
    for name in FILES:
        for step in load(name)["steps"]:
            assert not re.search(r"(?<!\$)\$COMMIT\b", commands(step)), f"{name}: {step['id']}"


def test_promotion_applies_the_approved_plan_in_order_from_the_same_artifact() -> None:
    steps = {step["id"]: step for step in load("promote")["steps"]}
    assert 'artifact.sh fetch "$$COMMIT"' in commands(steps["fetch"])
    assert '/workspace/artifact/pipeline/terraform.sh apply "${_ENV}"' in commands(steps["apply"])
    # The GKE workloads follow, with the worker image the CI stage built for the same commit.
    assert "pipeline/workloads.sh" in commands(steps["workloads"])
    assert "${_WORKER_IMAGE}:${COMMIT_SHA}" in commands(steps["workloads"])
    image = {s["id"]: s for s in load("ci")["steps"]}["image"]
    assert "${_WORKER_IMAGE}:${COMMIT_SHA}" in image["args"] and "workers/Dockerfile" in image["args"]
    script = (PIPELINE / "terraform.sh").read_text(encoding="utf-8")
    assert 'declare -A previous=([dev]="" [staging]=dev [prod]=staging)' in script
    assert set(ENVIRONMENTS) == {
        p.name.removesuffix(".tfvars") for p in (ROOT / "terraform/environments").glob("*.tfvars")
    }
    # apply refuses a plan whose changes differ from the approved ones, then records what runs where.
    assert 'cmp -s "$env.changes.approved.json" "$env.changes.now.json"' in script
    assert 'terraform apply -input=false "$env.tfplan"' in script
    assert '"$store/current/$env"' in script
    assert 'GOOGLE_IMPERSONATE_SERVICE_ACCOUNT="cmp-deployer@$project.iam.gserviceaccount.com"' in script


def test_drift_is_checked_with_detailed_exitcode_for_every_environment() -> None:
    steps = load("drift")["steps"]
    assert [s["id"] for s in steps] == [f"drift-{env}" for env in ENVIRONMENTS]
    for env, step in zip(ENVIRONMENTS, steps, strict=True):
        assert f"pipeline/drift.sh {env} " in commands(step)
    assert 'terraform.sh" drift' in (PIPELINE / "drift.sh").read_text(encoding="utf-8")
    script = (PIPELINE / "terraform.sh").read_text(encoding="utf-8")
    assert re.search(r"terraform plan [^\n]*-detailed-exitcode", script)


def test_pipeline_scripts_parse() -> None:
    for script in PIPELINE.glob("*.sh"):
        run = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert run.returncode == 0, f"{script.name}: {run.stderr}"


@pytest.fixture(scope="module")
def python_only(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose PATH holds only `python3`: the base interpreter, without site-packages."""
    bin_dir = tmp_path_factory.mktemp("python-only-bin")
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert base.is_file(), base
    wrapper = bin_dir / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec "{base}" -S "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(bin_dir)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    """The build the tests and Terraform use (functions.build, in this interpreter)."""
    out = tmp_path_factory.mktemp("reference") / "build"
    return out, list(build(out))


def test_make_build_needs_only_python(
    python_only: dict[str, str], reference: tuple[Path, list[Any]], tmp_path: Path
) -> None:
    make = shutil.which("make")
    assert make is not None
    # The interpreter really has nothing but the standard library.
    probe = subprocess.run(
        ["python3", "-c", "import yaml"], env=python_only, capture_output=True, check=False
    )
    assert probe.returncode != 0
    out = tmp_path / "out"
    run = subprocess.run(
        [make, "-C", str(ROOT), "build", f"BUILD_DIR={out}"],
        env=python_only,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # The same folders, byte for byte (content hashes), as the build the tests and Terraform use.
    assert json.loads((out / "manifest.json").read_text()) == reference[1]


def test_the_artifact_is_packed_reproducibly_with_everything_terraform_reads(
    reference: tuple[Path, list[Any]], tmp_path: Path
) -> None:
    tarballs = []
    for name in ("one.tar.gz", "two.tar.gz"):
        run = subprocess.run(
            [str(PIPELINE / "artifact.sh"), "pack", str(reference[0]), str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        tarballs.append((tmp_path / name).read_bytes())
    assert tarballs[0] == tarballs[1], "the same inputs pack to the same artifact"
    with tarfile.open(tmp_path / "one.tar.gz") as archive:
        names = set(archive.getnames())
    for needed in (
        "build/manifest.json",
        "terraform/main.tf",
        "terraform/bootstrap/main.tf",
        "terraform/environments/prod.tfvars",
        "schemas/catalog.json",
        "pipeline/terraform.sh",
    ):
        assert needed in names, needed
    assert not [n for n in names if "/.terraform/" in n or ".venv-checkov" in n]
