"""Which Cloud Functions exist: read from each functions/<package>/main.py without importing it.

Every main.py declares `TRIGGERS = {"<function name>": "<trigger>"}` next to its entry points, with
trigger one of: "http" (public API, authenticated in the app), "pubsub-push" (push endpoint of the
API's subscriptions), "tasks" (a Cloud Tasks target) or "scheduler:<cron>" (Cloud Scheduler). The local
suite, `make build` and Terraform all read this one declaration.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

FUNCTIONS_DIR = Path(__file__).resolve().parent
TRIGGER_KINDS = ("http", "pubsub-push", "tasks", "scheduler")


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # the entry point and the deployed function's name
    package: str  # functions/<package>
    trigger: str

    @property
    def kind(self) -> str:
        return self.trigger.split(":", 1)[0]

    @property
    def source(self) -> Path:
        return FUNCTIONS_DIR / self.package / "main.py"


def _triggers(main: Path) -> dict[str, str]:
    tree = ast.parse(main.read_text(encoding="utf-8"), str(main))
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if (
                any(isinstance(t, ast.Name) and t.id == "TRIGGERS" for t in targets)
                and node.value is not None
            ):
                value = ast.literal_eval(node.value)
                if not isinstance(value, dict):
                    raise ValueError(f"{main}: TRIGGERS must be a dict literal")
                return {str(k): str(v) for k, v in value.items()}
    raise ValueError(f"{main}: declare TRIGGERS = {{function name: trigger}}")


def discover() -> list[FunctionSpec]:
    specs: list[FunctionSpec] = []
    for main in sorted(FUNCTIONS_DIR.glob("*/main.py")):
        for name, trigger in _triggers(main).items():
            if trigger.split(":", 1)[0] not in TRIGGER_KINDS:
                raise ValueError(f"{main}: unknown trigger {trigger!r} for {name}")
            specs.append(FunctionSpec(name, main.parent.name, trigger))
    names = [s.name for s in specs]
    if len(names) != len(set(names)):
        raise ValueError(f"function names must be unique: {names}")
    return specs
