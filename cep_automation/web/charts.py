"""Line charts drawn on the server: the geometry of an inline SVG, its axis labels and its table fallback.

Nothing is fetched by the browser and no script runs: the template (``charts.html``) draws each series as
polylines in a 600 × 160 box stretched to the page's width (the strokes keep their width), and the labels are
HTML beside it, so they stay readable on a phone. A missing value (no snapshot, no row) breaks the line
instead of drawing it at zero. Every chart has a title, a one-line summary for screen readers and its figures
as a table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 600, 160
MAX_SERIES = 8  # the stylesheet has eight series colours
WORDS = {"en": ("peak", "latest", "no data"), "es": ("máximo", "último", "sin datos")}


@dataclass(frozen=True)
class Series:
    """One line: its name, colour index, values (None where unknown) and the polylines that draw it."""

    name: str
    colour: int
    values: Sequence[float | None]
    segments: tuple[str, ...]


@dataclass(frozen=True)
class Chart:
    """Everything the template draws for one chart."""

    key: str
    title: str
    unit: str
    labels: Sequence[str]
    x_ticks: tuple[str, ...]
    y_ticks: tuple[str, ...]
    grid: tuple[float, ...]
    series: tuple[Series, ...]
    summary: str
    fmt: Callable[[float | None], str]

    def rows(self) -> list[tuple[str, list[str]]]:
        """The table fallback: one row per point, one cell per series."""
        return [(label, [self.fmt(s.values[i]) for s in self.series]) for i, label in enumerate(self.labels)]


def nice_ceiling(value: float) -> float:
    """The smallest of 2, 4, 6, 8, 10 × 10ⁿ at or above ``value`` (2 for nothing to show): even, so the middle
    tick is as round as the top one."""
    if value <= 0 or not math.isfinite(value):
        return 2.0
    power = 10.0 ** math.floor(math.log10(value))
    steps = (1, 2, 4, 6, 8, 10) if power > 1 else (2, 4, 6, 8, 10)  # a top of 1 (or 0.1) would halve to 0.5
    return float(next(step * power for step in steps if step * power >= value))


def number(decimals: int = 0, decimal_mark: str = ".") -> Callable[[float | None], str]:
    """A formatter: thousands unseparated, ``decimals`` places, "—" for unknown."""
    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:.{decimals}f}".replace(".", decimal_mark)
    return fmt


def segments(values: Sequence[float | None], top: float) -> tuple[str, ...]:
    """The polylines of one series: consecutive known points, split where a value is missing."""
    step = WIDTH / max(len(values) - 1, 1)
    runs: list[list[tuple[float, float]]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            runs.append([])
        else:
            runs[-1].append((i * step, HEIGHT - min(value, top) / top * HEIGHT))
    return tuple(_polyline(run) for run in runs if run)


def _polyline(points: list[tuple[float, float]]) -> str:
    if len(points) == 1:  # a lone point is drawn as a dot: a line to a point a hair to its right
        points = [points[0], (points[0][0] + 0.5, points[0][1])]
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def line_chart(key: str, title: str, unit: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]],
               fmt: Callable[[float | None], str] | None = None, lang: str = "en", ticks: int = 4) -> Chart:
    """A chart of ``series`` (name → one value per label) over ``labels``, its y axis from 0 to a round number."""
    fmt = fmt or number()
    series = {name: [None if v is None else float(v) for v in values] for name, values in series.items()}  # Decimals
    known = [v for values in series.values() for v in values if v is not None]
    top = nice_ceiling(max(known, default=0))
    y_ticks = tuple(fmt(top * (2 - i) / 2) for i in range(3))
    picks = sorted({min(i * len(labels) // ticks, len(labels) - 1) for i in range(ticks + 1)}) if labels else []
    peak, latest, none = WORDS[lang]
    summary = "; ".join(
        f"{name}: {peak} {fmt(max((v for v in values if v is not None), default=None))}, "
        f"{latest} {fmt(next((v for v in reversed(values) if v is not None), None))}"
        for name, values in series.items()) or none
    drawn = tuple(Series(name, i % MAX_SERIES, values, segments(values, top))
                  for i, (name, values) in enumerate(series.items()))
    return Chart(key, title, unit, labels, tuple(labels[i] for i in picks), y_ticks, (0.0, HEIGHT / 2),
                 drawn, summary, fmt)
