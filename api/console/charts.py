"""Bar charts drawn on the server as inline SVG: no chart library in the browser, nothing to
vendor, readable without JavaScript, and each chart carries a text alternative (``<title>``,
``<desc>``) and is followed by its figures as a table in the page."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

_ids = itertools.count(1)  # element ids unique within a page (and across its refreshes)


def _short(label: str, room: float) -> str:
    """``label`` cut to what fits in ``room`` units at the label font (~6 units a char)."""
    fits = max(3, int(room // 6))
    return label if len(label) <= fits else label[: fits - 1] + "…"


@dataclass(frozen=True, slots=True)
class Bar:
    label: str  # under the bar (short)
    value: float
    text: str  # the value as people read it ("1,234", "$0.0012")


def bar_chart(title: str, bars: Sequence[Bar], *, width: int = 360, height: int = 160) -> Markup:
    """A captioned, accessible SVG bar chart of ``bars`` (scaled to the largest value)."""
    top = max((b.value for b in bars), default=0.0) or 1.0
    n = max(len(bars), 1)
    pad_bottom, pad_top = 22, 16
    slot = width / n
    bar_w = min(48.0, max(2.0, slot * 0.7))
    usable = height - pad_bottom - pad_top
    desc = "; ".join(f"{b.label}: {b.text}" for b in bars) or "no data"
    uid = next(_ids)
    tallest = max(range(len(bars)), key=lambda i: bars[i].value, default=-1)
    parts = [
        f"<figure><figcaption>{escape(title)}</figcaption>",
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart-t{uid} chart-d{uid}">',
        f'<title id="chart-t{uid}">{escape(title)}</title>',
        f'<desc id="chart-d{uid}">{escape(desc)}</desc>',
        f'<line x1="0" y1="{height - pad_bottom}" x2="{width}" y2="{height - pad_bottom}" '
        'class="axis"/>',
    ]
    every = max(1, -(-n // 7))  # label at most 7 bars so labels never overlap
    for i, b in enumerate(bars):
        h = usable * (b.value / top)
        x = i * slot + (slot - bar_w) / 2
        y = height - pad_bottom - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" class="bar">'
            f"<title>{escape(b.label)}: {escape(b.text)}</title></rect>"
        )
        # Values over every bar when there is room, else over the tallest only.
        if b.value > 0 and (slot >= 40 or i == tallest):
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{max(y - 3, 11):.1f}" class="value" '
                f'text-anchor="middle">{escape(b.text)}</text>'
            )
        if i % every == 0:
            label = _short(b.label, slot * every)
            half = len(label) * 3  # keep the first and last labels inside the chart
            mid = min(max(x + bar_w / 2, half), width - half)
            parts.append(
                f'<text x="{mid:.1f}" y="{height - 6}" class="label" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg></figure>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above
