"""`make build` deploys each function with its own package and shared/ only, so a function package
importing another one would build fine and fail in production: nothing of that kind may exist."""

from __future__ import annotations

import ast
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_no_function_package_imports_another() -> None:
    packages = sorted(p.name for p in FUNCTIONS.iterdir() if (p / "main.py").is_file())
    assert len(packages) >= 6
    crossings = [
        f"{source.relative_to(FUNCTIONS)} imports {module}"
        for package in packages
        for source in (FUNCTIONS / package).rglob("*.py")
        for module in _imported_modules(source)
        if module.startswith("functions.")
        and module.split(".")[1] in packages
        and module.split(".")[1] != package
    ]
    assert crossings == []
