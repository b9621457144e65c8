"""The envelope as a picture: one heatmap per backend x norm, one PNG per dtype.

Each heatmap has the magnitude along x (powers of ten) and, along y, a block of rows per
reduction size, one row per conditioning within it. A cell's colour is its worst error /
bound: greens within the bound (darker is nearer to it), oranges to red outside it. What is
not a ratio has a colour of its own: black where an output is NaN or inf while the exact one
is finite, purple where the output is all zeros while the exact one is not, pink where the error
exceeds a bound the model cannot vouch for (`records`, "bound void"), greys where the
backend refused or raised, or where the spec cannot judge. A gold diamond marks a precision
outlier; a blue outline surrounds the cells where the exact sum of squares of a pooled set
overflows the backend's accumulation dtype (an intermediate overflows while the output is
ordinary), a dashed one those where it, plus n eps, is below that dtype's smallest normal
number (it underflows).

It reads records only (`records.records`, as `envelope.json` has them), so the picture can be
drawn again from the JSON. matplotlib is imported here alone, through its object-oriented
API (no pyplot state), on the Agg canvas.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from normspec.runner.envelope.records import ratio

#: error / bound bins: (upper edge, colour, label); the last bin is everything above
RATIO_BINS: tuple[tuple[float, str, str], ...] = (
    (1e-4, "#e5f5e0", "< 1e-4"),
    (1e-3, "#c7e9c0", "1e-4 to 1e-3"),
    (1e-2, "#a1d99b", "1e-3 to 1e-2"),
    (1e-1, "#74c476", "1e-2 to 0.1"),
    (1.0, "#238b45", "0.1 to 1 (within)"),
    (10.0, "#fdae6b", "1 to 10 (outside)"),
    (1e3, "#f16913", "10 to 1e3"),
    (math.inf, "#a50f15", "> 1e3"),
)
#: the outcomes that are not a ratio, each with its colour and legend label
CATEGORIES: dict[str, tuple[str, str]] = {
    "non-finite": ("#000000", "NaN or inf, exact finite"),
    "all zero": ("#7b2cbf", "all zeros, exact not"),
    "bound void": ("#f768a1", "outside where the bound is void"),
    "refused": ("#d9d9d9", "refused by the backend"),
    "error": ("#737373", "the backend raised"),
    "beyond the reference": ("#f0f0f0", "beyond the spec's float64"),
}
UNMEASURED = "#ffffff"  # inputs not representable in the dtype
OUTLINE = "#1f5fff"
OUTLIER = "gold"
OVERFLOW_LABEL = "sum of squares overflows the accumulation dtype (exact output ordinary)"
UNDERFLOW_LABEL = "sum of squares (+ n eps) below its smallest normal number"
OUTLIER_LABEL = "precision outlier: within, but >10x its best peer"


def _colour(record: dict) -> str:
    if record["outcome"] in CATEGORIES:
        return CATEGORIES[record["outcome"]][0]
    value = ratio(record)
    return next(colour for edge, colour, _ in RATIO_BINS if value <= edge)


def _exponent(value: float) -> str:
    return "0" if value == 0 else f"1e{round(math.log10(value))}"


#: inches: each panel, the margins for the titles above and for a four-row legend below
PANEL_WIDTH, PANEL_HEIGHT, TOP, BOTTOM, LEFT = 3.0, 2.3, 0.95, 1.05, 0.9
LEGEND_ENTRIES = len(RATIO_BINS) + len(CATEGORIES) + 3


@dataclass(frozen=True)
class Axes:
    """The grid of a picture: the magnitudes (columns), and the rows, a block of
    conditionings per size."""

    magnitudes: Sequence[float]
    conditionings: Sequence[float]
    sizes: Sequence[int]

    def column(self, magnitude: float) -> int:
        return list(self.magnitudes).index(magnitude)

    def row(self, size: int, conditioning: float) -> int:
        return list(self.sizes).index(size) * len(self.conditionings) + list(
            self.conditionings
        ).index(conditioning)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.sizes) * len(self.conditionings), len(self.magnitudes)


def draw(
    records: Sequence[dict],
    dtype: str,
    axes: Axes,
    backends: Sequence[str],
    norms: Sequence[str],
    title: str,
) -> bytes:
    """The PNG of `dtype`'s records: a heatmap per norm (rows) x backend (columns)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mine = [r for r in records if r["dtype"] == dtype]
    norms = [n for n in norms if any(r["norm"] == n for r in mine)]
    width = max(LEFT + PANEL_WIDTH * len(backends) + 0.1, 9.0)
    subtitle = textwrap.wrap(
        "x: magnitude, the offset (the spread where c = 0), every column a power of ten;  "
        "y: a block per reduction size n, and in each block the conditioning c = offset / "
        "spread, from top to bottom " + ", ".join(_exponent(c) for c in axes.conditionings),
        width=int(width * 12),
    )
    columns = max(2, min(5, int((width - 0.5) / 3.4)))  # of the legend
    top = TOP + 0.16 * (len(subtitle) - 1)
    bottom = BOTTOM + 0.17 * (math.ceil(LEGEND_ENTRIES / columns) - 4)
    height = top + PANEL_HEIGHT * len(norms) + bottom
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(
        left=LEFT / width,
        right=1 - 0.1 / width,
        top=1 - top / height,
        bottom=bottom / height,
        hspace=0.3,
        wspace=0.08,
    )
    grid = figure.add_gridspec(len(norms), len(backends))
    for i, norm in enumerate(norms):
        for j, backend in enumerate(backends):
            ax = figure.add_subplot(grid[i, j])
            if i == 0:
                ax.set_title(backend, fontsize=11, fontweight="bold")
            cells = [r for r in mine if r["norm"] == norm and r["backend"] == backend]
            _panel(ax, cells, axes, first_column=j == 0)
            if j == 0:
                ax.set_ylabel(norm, fontsize=11, fontweight="bold", labelpad=2)
    figure.suptitle(f"{title}: {dtype}", fontsize=13, y=1 - 0.15 / height)
    figure.text(0.5, 1 - 0.45 / height, "\n".join(subtitle), ha="center", va="top", fontsize=9)
    _legend(figure, columns)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _panel(ax, cells: list[dict], axes: Axes, first_column: bool) -> None:
    """One backend x norm: the cells as an image, the outlines, the outliers, the ticks."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgb

    if not cells:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.text(0.5, 0.5, "not provided", ha="center", va="center", color="#999999")
        return
    image = np.ones((*axes.shape, 3))
    image[:] = to_rgb(UNMEASURED)
    overflow = np.zeros(axes.shape, dtype=bool)
    underflow = np.zeros_like(overflow)
    outliers = []
    for r in cells:
        y, x = axes.row(r["size"], r["conditioning"]), axes.column(r["magnitude"])
        image[y, x] = to_rgb(_colour(r))
        overflow[y, x] = r["intermediate_overflow"]
        underflow[y, x] = r["intermediate_underflow"]
        if r["outcome"] == "precision outlier":
            outliers.append((x, y))
    ax.imshow(image, aspect="auto", interpolation="nearest")
    ax.add_collection(LineCollection(_outline(overflow), colors=OUTLINE, linewidths=2))
    dashed = LineCollection(_outline(underflow), colors=OUTLINE, linewidths=1.2, linestyles="--")
    ax.add_collection(dashed)
    if outliers:
        xs, ys = zip(*outliers, strict=True)
        ax.scatter(xs, ys, marker="D", s=6, c=OUTLIER, edgecolors="black", linewidths=0.3)
    block = len(axes.conditionings)
    for k in range(1, len(axes.sizes)):  # white rules between the size blocks
        ax.axhline(k * block - 0.5, color="white", linewidth=2)
    ticks = _ticks(axes.magnitudes)
    ax.set_xticks(ticks, [_exponent(axes.magnitudes[t]) for t in ticks], fontsize=7)
    ax.set_xticks(range(len(axes.magnitudes)), minor=True)
    centres = [k * block + (block - 1) / 2 for k in range(len(axes.sizes))]
    ax.set_yticks(centres, [f"n={n}" for n in axes.sizes] if first_column else [], fontsize=7)
    ax.tick_params(length=2, pad=1)
    ax.tick_params(which="minor", length=1)


def _ticks(magnitudes: Sequence[float]) -> list[int]:
    """The labelled columns: about six, on the roundest exponents the grid has."""
    exponents = [round(math.log10(m)) for m in magnitudes]
    every = max(1, math.ceil(len(magnitudes) / 6))
    for round_to in (10, 5, 1):
        marked = [i for i, e in enumerate(exponents) if e % round_to == 0 or round_to == 1]
        marked = marked[:: max(1, math.ceil(len(marked) / 8))]
        if len(marked) >= 4:
            return marked
    return list(range(0, len(magnitudes), every))


def _legend(figure, columns: int) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=f"error/bound {label}") for _, c, label in RATIO_BINS]
    handles += [Patch(color=c, label=label) for c, label in CATEGORIES.values()]
    handles += [
        Line2D([], [], color=OUTLINE, linewidth=2, label=OVERFLOW_LABEL),
        Line2D([], [], color=OUTLINE, linewidth=1.2, linestyle="--", label=UNDERFLOW_LABEL),
        Line2D([], [], marker="D", linestyle="", markerfacecolor=OUTLIER,
               markeredgecolor="black", label=OUTLIER_LABEL),
    ]  # fmt: skip
    assert len(handles) == LEGEND_ENTRIES
    figure.legend(handles=handles, loc="lower center", ncol=columns, fontsize=8, frameon=False)


def _outline(mask: np.ndarray) -> list[list[tuple[float, float]]]:
    """The edges between cells inside `mask` and cells outside it (or the border), as
    segments in image coordinates (cell (y, x) spans x +- 0.5, y +- 0.5)."""
    segments = []
    height, width = mask.shape
    for y, x in zip(*np.nonzero(mask), strict=True):
        if y == 0 or not mask[y - 1, x]:
            segments.append([(x - 0.5, y - 0.5), (x + 0.5, y - 0.5)])
        if y == height - 1 or not mask[y + 1, x]:
            segments.append([(x - 0.5, y + 0.5), (x + 0.5, y + 0.5)])
        if x == 0 or not mask[y, x - 1]:
            segments.append([(x - 0.5, y - 0.5), (x - 0.5, y + 0.5)])
        if x == width - 1 or not mask[y, x + 1]:
            segments.append([(x + 0.5, y - 0.5), (x + 0.5, y + 0.5)])
    return segments
