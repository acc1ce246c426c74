"""The portal's shipped JavaScript, gzipped (level 9), against the 250 KB budget it aims under.

Reads the bundle `make portal` built into functions/portal/static/assets (the section is skipped when
it is not built). The Firebase Auth SDK is in it; nothing else is loaded at run time but config.json.
"""

from __future__ import annotations

import gzip

from functions.portal.assets import STATIC
from tests.bench.measure import Measurement, Report

SECTION = "Tenant Admin Portal: the shipped bundle"
BUDGET_KB = 250.0


def gzipped_kb(kind: str) -> tuple[float, float]:
    """(gzipped, raw) size in KB of every built asset of this kind ("js", "css")."""
    files = sorted((STATIC / "assets").glob(f"*.{kind}"))
    raw = b"".join(f.read_bytes() for f in files)
    return len(gzip.compress(raw, compresslevel=9)) / 1024, len(raw) / 1024


def run(report: Report) -> None:
    if not (STATIC / "index.html").exists():
        report.skip(SECTION, "the portal is not built: run `make portal`")
        return
    js, js_raw = gzipped_kb("js")
    css, _ = gzipped_kb("css")
    report.add(
        Measurement(
            SECTION,
            "JavaScript shipped, gzipped (Firebase Auth SDK included)",
            "KB",
            js,
            BUDGET_KB,
            "the budget the portal aims under",
            note=f"{js_raw:.0f} KB minified; CSS {css:.1f} KB gzipped",
        )
    )
