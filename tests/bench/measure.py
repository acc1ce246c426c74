"""Figures, the baselines they are compared with, and how they are printed and saved."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def percentile(samples: Sequence[float], q: int) -> float:
    """The q-th percentile (1..99), interpolated between the closest ranks."""
    if not samples:
        raise ValueError("no samples")
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


@dataclass(frozen=True)
class Stats:
    n: int
    p50: float
    p95: float
    min: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        return cls(len(samples), percentile(samples, 50), percentile(samples, 95), min(samples), max(samples))


def ms(seconds: Sequence[float]) -> list[float]:
    return [round(s * 1000, 3) for s in seconds]


@dataclass(frozen=True)
class Measurement:
    """One figure beside its baseline; ratio = value / baseline (None when either is missing)."""

    section: str
    name: str
    unit: str
    value: float | None
    baseline: float | None
    baseline_name: str
    higher_is_better: bool = False
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": None if self.ratio is None else round(self.ratio, 3)}


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if not unit:  # a count
        return f"{value:,.0f}"
    return f"{value:,.1f} {unit}"


@dataclass
class Report:
    measurements: list[Measurement] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)  # raw samples, for bench-results.json only

    def add(self, *measurements: Measurement) -> None:
        self.measurements.extend(measurements)

    def skip(self, section: str, reason: str) -> None:
        self.skipped.append({"section": section, "reason": reason})

    def render(self) -> str:
        headers = ("measure", "result", "baseline", "ratio", "notes")
        lines: list[str] = []
        sections = list(dict.fromkeys([m.section for m in self.measurements]))
        rows_by_section = {
            section: [
                (
                    m.name,
                    _number(m.value, m.unit),
                    _number(m.baseline, m.unit),
                    "n/a" if m.ratio is None else f"{m.ratio:.2f}x",
                    m.note,
                )
                for m in self.measurements
                if m.section == section
            ]
            for section in sections
        }
        all_rows = [row for rows in rows_by_section.values() for row in rows]
        widths = [max(len(str(r[i])) for r in [headers, *all_rows]) for i in range(4)]

        def line(row: Sequence[str]) -> str:
            cells = [str(row[0]).ljust(widths[0])] + [str(row[i]).rjust(widths[i]) for i in (1, 2, 3)]
            return "  " + "  ".join(cells) + "  " + row[4]

        for section in sections:
            baselines = dict.fromkeys(
                m.baseline_name for m in self.measurements if m.section == section and m.baseline_name
            )
            lines.append("")
            lines.append(section)
            lines.append("  baseline: " + "; ".join(baselines))
            lines.append(line(headers))
            lines.extend(line(row) for row in rows_by_section[section])
        for skipped in self.skipped:
            lines.append("")
            lines.append(f"{skipped['section']}: not measured ({skipped['reason']})")
        lines.append("")
        lines.append("ratio = result / baseline, both measured in this run on this machine.")
        return "\n".join(lines)

    def write(self, path: Path, meta: dict[str, Any]) -> None:
        document = {
            **meta,
            "measurements": [m.to_json() for m in self.measurements],
            "skipped": self.skipped,
            "samples": self.samples,
        }
        path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
