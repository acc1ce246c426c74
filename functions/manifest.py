"""Which Cloud Functions exist: read from each functions/<package>/main.py without importing it.

Every main.py declares `TRIGGERS = {"<function name>": "<trigger>"}` next to its entry points, with
trigger one of: "http" (public API, authenticated in the app), "pubsub-push" (push endpoint of the
API's subscriptions), "tasks" (a Cloud Tasks target) or "scheduler:<cron>" (Cloud Scheduler). The local
suite, `make build` and Terraform all read this one declaration.

Two optional declarations sit next to it, keyed by function names of the same package (absent: none):

- `CALLS = {"<function>": ["<callee>", ...]}`: the platform's HTTP APIs a function calls as a service
  (shared/services.py ServiceClient). Every callee must be an "http" function. Terraform lets exactly
  these callers' service accounts in (CMP_SERVICE_CALLERS of the callee).
- `NEEDS = {"<function>": ["<need>", ...]}`: project-level capabilities a function cannot work without,
  from NEED_KINDS. "identity-admin": it manages Identity Platform tenants and users (creates them, sets
  custom claims, revokes tokens, disables users); Terraform grants the admin roles for it.
  "webhook-secrets": it manages ("http") or reads ("tasks") the run-time Secret Manager secrets
  `webhook-<tenant>-<endpoint>`; Terraform grants admin or accessor, conditioned to those names only.
  "smtp-relay": it sends mail; Terraform gives it the relay's CMP_SMTP_* settings.
  "identity-client": it serves the browser sign-in; Terraform gives it Identity Platform's web API key
  (CMP_IDENTITY_API_KEY, a public identifier, not a secret).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FUNCTIONS_DIR = Path(__file__).resolve().parent
TRIGGER_KINDS = ("http", "pubsub-push", "tasks", "scheduler")
NEED_KINDS = ("identity-admin", "webhook-secrets", "smtp-relay", "identity-client")


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # the entry point and the deployed function's name
    package: str  # functions/<package>
    trigger: str
    calls: tuple[str, ...] = ()  # "http" functions it calls as a service (CALLS)
    needs: tuple[str, ...] = ()  # NEED_KINDS it needs (NEEDS)

    @property
    def kind(self) -> str:
        return self.trigger.split(":", 1)[0]

    @property
    def source(self) -> Path:
        return FUNCTIONS_DIR / self.package / "main.py"

    @property
    def serves_api(self) -> bool:
        """An HTTP API: its routes (routes.py) and their OpenAPI document. The portal's function, which
        serves web pages, is HTTP without an API."""
        return self.kind == "http" and (self.source.parent / "routes.py").exists()


def _declaration(tree: ast.Module, main: Path, name: str) -> dict[Any, Any] | None:
    """The dict literal assigned to `name` at module level, or None when main.py does not declare it."""
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value is not None:
                try:
                    value = ast.literal_eval(node.value)
                except ValueError as exc:
                    raise ValueError(f"{main}: {name} must be a literal") from exc
                if not isinstance(value, dict):
                    raise ValueError(f"{main}: {name} must be a dict literal")
                return value
    return None


def _triggers(tree: ast.Module, main: Path) -> dict[str, str]:
    value = _declaration(tree, main, "TRIGGERS")
    if value is None:
        raise ValueError(f"{main}: declare TRIGGERS = {{function name: trigger}}")
    return {str(k): str(v) for k, v in value.items()}


def _lists(tree: ast.Module, main: Path, name: str, functions: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """CALLS or NEEDS: {function of this package: [names]}, sorted and without duplicates."""
    value = _declaration(tree, main, name) or {}
    found: dict[str, tuple[str, ...]] = {}
    for function, items in value.items():
        if function not in functions:
            raise ValueError(f"{main}: {name} names {function!r}, which is not in this package's TRIGGERS")
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) and i for i in items):
            raise ValueError(f"{main}: {name}[{function!r}] must be a list of names")
        found[function] = tuple(sorted(set(items)))
    return found


def discover() -> list[FunctionSpec]:
    specs: list[FunctionSpec] = []
    for main in sorted(FUNCTIONS_DIR.glob("*/main.py")):
        tree = ast.parse(main.read_text(encoding="utf-8"), str(main))
        triggers = _triggers(tree, main)
        calls = _lists(tree, main, "CALLS", triggers)
        needs = _lists(tree, main, "NEEDS", triggers)
        for name, trigger in triggers.items():
            if trigger.split(":", 1)[0] not in TRIGGER_KINDS:
                raise ValueError(f"{main}: unknown trigger {trigger!r} for {name}")
            unknown = [n for n in needs.get(name, ()) if n not in NEED_KINDS]
            if unknown:
                raise ValueError(f"{main}: unknown NEEDS {unknown} for {name} (known: {list(NEED_KINDS)})")
            specs.append(
                FunctionSpec(name, main.parent.name, trigger, calls.get(name, ()), needs.get(name, ()))
            )
    names = [s.name for s in specs]
    if len(names) != len(set(names)):
        raise ValueError(f"function names must be unique: {names}")
    kinds = {s.name: s.kind for s in specs}
    for spec in specs:
        for callee in spec.calls:
            if callee == spec.name:
                raise ValueError(f"{spec.source}: {spec.name} declares a call to itself")
            if kinds.get(callee) != "http":
                found = f"a {kinds[callee]!r} function" if callee in kinds else "no function"
                raise ValueError(
                    f"{spec.source}: {spec.name} calls {callee!r}, which is {found}: "
                    "only 'http' functions take service calls"
                )
    return specs
