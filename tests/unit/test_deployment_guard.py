"""A deployed function refuses to start with any emulator variable set (shared.config.refuse_emulators)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared.config import EmulatorInDeployment, refuse_emulators


@pytest.mark.parametrize("environment", ["dev", "staging", "prod", "PROD"])
@pytest.mark.parametrize(
    "variable",
    [
        "FIREBASE_AUTH_EMULATOR_HOST",
        "FIRESTORE_EMULATOR_HOST",
        "PUBSUB_EMULATOR_HOST",
        "CLOUD_TASKS_EMULATOR_HOST",
        "SECRET_MANAGER_EMULATOR_HOST",
        "STORAGE_EMULATOR_HOST",  # any *_EMULATOR_HOST, not only the ones we use today
    ],
)
def test_a_deployed_environment_with_an_emulator_variable_refuses(environment: str, variable: str) -> None:
    with pytest.raises(EmulatorInDeployment, match=variable):
        refuse_emulators({"CMP_ENVIRONMENT": environment, variable: "127.0.0.1:9099"})


@pytest.mark.parametrize("environment", ["local", "test", None])
def test_the_emulator_suite_may_use_them(environment: str | None) -> None:
    environ = {"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099"}
    if environment is not None:
        environ["CMP_ENVIRONMENT"] = environment
    refuse_emulators(environ)


def test_a_deployed_environment_without_emulators_starts() -> None:
    refuse_emulators({"CMP_ENVIRONMENT": "prod", "FIRESTORE_EMULATOR_HOST": ""})


def test_a_function_module_fails_at_import_when_deployed_with_an_emulator_variable() -> None:
    """Start-up is the import of the function's main module (what the Functions runtime does)."""
    env = {"CMP_ENVIRONMENT": "prod", "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", "import functions.tenant_api.main"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "EmulatorInDeployment" in result.stderr
    ok = subprocess.run(
        [sys.executable, "-c", "import functions.tenant_api.main"],
        env={**env, "CMP_ENVIRONMENT": "local"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
