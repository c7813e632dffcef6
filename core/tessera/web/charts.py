"""Charts for web pages, rendered on the server as inline SVG: no JavaScript, nothing loaded
from elsewhere, readable by screen readers and by tests.

Three shapes cover what the pages need:

* :func:`bar_chart`: horizontal bars, one per item (activities per manager);
* :func:`funnel_chart`: horizontal bars centred on one axis, in order (a sales funnel);
* :func:`column_chart`: vertical columns per category with one or more series side by side
  (plan vs actual, forecast by month).

Every chart is a ``<figure>`` holding an ``<svg role="img">`` with ``<title>`` and ``<desc>``
(named by ``aria-labelledby``), one ``<rect class="datum">`` per value carrying
``data-label``, ``data-series`` and ``data-value`` (the exact number, machine-readable) plus a
``<title>`` tooltip with the value formatted for the reader's locale (tessera.i18n), and, unless
the page already shows the figures in its own table, a data table fallback in a ``<details>``.
Every text is escaped (the functions return ``markupsafe.Markup`` for ``{{ chart }}``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

from tessera import i18n
from tessera.i18n import N_

#: Series colours (contrast >= 3:1 on white); the legend and the table name each series, so
#: colour is never the only cue.
PALETTE = ("#2f6fed", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490")
WIDTH = 640
LABEL_CHARS = 26
#: The widest a character of the 12px labels is drawn (Cyrillic capitals, digits with spaces):
#: margins are reserved from it, so a label is never cut off at the edge of the figure.
CHAR_W = 7.5
#: Horizontal room a category label needs before the labels are turned (and, when still too
#: close, only every n-th is written; the data table and the tooltips carry every one).
X_LABEL_GAP = 8.0
#: Turned labels are drawn at this angle (degrees, rising to the right) and need this much
#: room between their baselines.
X_LABEL_ANGLE = 45
X_LABEL_PITCH = 18.0

Formatter = Callable[[Any], str]


@dataclass(frozen=True)
class Datum:
    """One value: ``label`` (what a reader sees), ``value`` (a number, None when unknown) and
    optionally ``href`` (the bar links there), ``note`` (added to the tooltip) and ``key`` (a
    language-independent name for ``data-key``: a stage key, a month ``2026-04``, a user id)."""

    label: str
    value: int | float | Decimal | None
    href: str | None = None
    note: str = ""
    key: str = ""


@dataclass(frozen=True)
class Series:
    """A named row of values for :func:`column_chart`, one per category in order; ``key`` is
    its language-independent name (``data-series-key``)."""

    name: str
    values: Sequence[int | float | Decimal | None]
    formatter: Formatter | None = None
    key: str = ""


@dataclass
class _Chart:
    title: str
    desc: str
    ident: str
    parts: list[str] = field(default_factory=list)


def machine_value(value: Any) -> str:
    """The exact number for ``data-value``: ``12``, ``125000.00`` (a Decimal as it is),
    ``0.25`` and ``1`` (a float without trailing zeros); ``""`` for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return format(Decimal(repr(value)).normalize(), "f")  # 1.0 -> "1", 0.25 -> "0.25"
    return format(Decimal(str(value)), "f")


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number > 0 else 0.0


def _format(value: Any, formatter: Formatter | None) -> str:
    if value is None:
        return "—"
    return (formatter or i18n.format_number)(value)


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _ident(kind: str, title: str, labels: Sequence[str], ident: str | None) -> str:
    if ident:
        return ident
    digest = hashlib.sha1("\x1f".join([kind, title, *labels]).encode()).hexdigest()[:8]
    return f"chart-{digest}"


def _a(value: Any) -> str:
    """An attribute value, escaped."""
    return str(escape(str(value)))


def _open_svg(chart: _Chart, kind: str, height: int) -> None:
    chart.parts.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" style="max-width:{WIDTH}px" '
        f'aria-labelledby="{chart.ident}-title {chart.ident}-desc" data-chart="{kind}">'
        f'<title id="{chart.ident}-title">{escape(chart.title)}</title>'
        f'<desc id="{chart.ident}-desc">{escape(chart.desc)}</desc>'
    )


def _rect(
    x: float,
    y: float,
    w: float,
    h: float,
    *,
    label: str,
    value: Any,
    formatted: str,
    series: str = "",
    colour: str = PALETTE[0],
    note: str = "",
    key: str = "",
    series_key: str = "",
) -> str:
    tooltip = f"{label}: {formatted}" + (f" ({note})" if note else "")
    if series:
        tooltip = f"{series} · {tooltip}"
    return (
        f'<rect class="datum" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
        f'fill="{colour}" data-label="{_a(label)}" data-key="{_a(key)}" data-series="{_a(series)}" '
        f'data-series-key="{_a(series_key)}" '
        f'data-value="{_a(machine_value(value))}" data-formatted="{_a(formatted)}">'
        f"<title>{escape(tooltip)}</title></rect>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", angle: float = 0) -> str:
    turn = f' transform="rotate({-angle:g} {x:.1f} {y:.1f})"' if angle else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="12" fill="#1f2430"{turn}>'
        f"{escape(text)}</text>"
    )


def text_width(text: str) -> float:
    """The most room ``text`` takes at the charts' font size (see :data:`CHAR_W`)."""
    return len(text) * CHAR_W


def _table(chart: _Chart, head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = "".join(f'<th scope="col">{escape(h)}</th>' for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            (f'<th scope="row">{escape(c)}</th>' if i == 0 else f"<td>{escape(c)}</td>")
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    summary = i18n.gettext(N_("The chart as a table"))
    return (
        f'<details class="chart-data"><summary>{escape(summary)}</summary>'
        f'<table aria-describedby="{chart.ident}-title"><thead><tr>{cells}</tr></thead>'
        f"<tbody>{body}</tbody></table></details>"
    )


def _finish(chart: _Chart, table: str) -> Markup:
    return Markup(
        f'<figure class="chart" id="{chart.ident}">' + "".join(chart.parts) + "</svg>" + table + "</figure>"
    )


def _empty(chart: _Chart, kind: str) -> Markup:
    _open_svg(chart, kind, 40)
    chart.parts.append(_text(WIDTH / 2, 24, i18n.gettext(N_("No data to show")), anchor="middle"))
    return _finish(chart, "")


def _horizontal(
    kind: str,
    title: str,
    data: Sequence[Datum],
    *,
    desc: str,
    formatter: Formatter | None,
    label_header: str | None,
    value_header: str | None,
    table: bool,
    ident: str | None,
    centred: bool,
) -> Markup:
    chart = _Chart(title, desc or title, _ident(kind, title, [d.label for d in data], ident))
    if not data:
        return _empty(chart, kind)
    row, top, label_w, value_w = 30, 8, 190, 130
    area = WIDTH - label_w - value_w
    height = top * 2 + row * len(data)
    peak = max((_number(d.value) for d in data), default=0.0) or 1.0
    _open_svg(chart, kind, height)
    for i, d in enumerate(data):
        y = top + i * row
        w = area * _number(d.value) / peak
        if d.value is not None and _number(d.value) > 0:
            w = max(w, 2.0)  # a small value stays visible
        x = label_w + ((area - w) / 2 if centred else 0)
        formatted = _format(d.value, formatter)
        bar = _rect(
            x, y + 4, w, row - 8, label=d.label, value=d.value, formatted=formatted, note=d.note, key=d.key
        )
        if d.href:
            bar = f'<a href="{_a(d.href)}">{bar}</a>'
        chart.parts.append(
            f'<g class="row">{_text(label_w - 8, y + row / 2 + 4, _short(d.label), anchor="end")}'
        )
        chart.parts.append(bar)
        chart.parts.append(_text(WIDTH - value_w + 8, y + row / 2 + 4, formatted) + "</g>")
    rows = [[d.label, _format(d.value, formatter)] for d in data]
    head = [label_header or i18n.gettext(N_("Item")), value_header or i18n.gettext(N_("Value"))]
    return _finish(chart, _table(chart, head, rows) if table else "")


def bar_chart(
    title: str,
    data: Sequence[Datum],
    *,
    desc: str = "",
    formatter: Formatter | None = None,
    label_header: str | None = None,
    value_header: str | None = None,
    table: bool = True,
    ident: str | None = None,
) -> Markup:
    """Horizontal bars, one per :class:`Datum`, longest = the largest value. ``formatter``
    shows a value to the reader (default: a number per locale); ``table=False`` when the page
    shows the same figures in its own table."""
    return _horizontal(
        "bar",
        title,
        data,
        desc=desc,
        formatter=formatter,
        label_header=label_header,
        value_header=value_header,
        table=table,
        ident=ident,
        centred=False,
    )


def funnel_chart(
    title: str,
    data: Sequence[Datum],
    *,
    desc: str = "",
    formatter: Formatter | None = None,
    label_header: str | None = None,
    value_header: str | None = None,
    table: bool = True,
    ident: str | None = None,
) -> Markup:
    """A funnel: the stages in order, each a bar centred on one axis, widths by value."""
    return _horizontal(
        "funnel",
        title,
        data,
        desc=desc,
        formatter=formatter,
        label_header=label_header,
        value_header=value_header,
        table=table,
        ident=ident,
        centred=True,
    )


def _nice(peak: float) -> float:
    """A round axis maximum at or above ``peak`` (1, 2, 2.5, 5 x 10^n)."""
    if peak <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(peak))) - 1) if peak >= 1 else 1
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= peak:
            return float(step * magnitude)
    return float(10 * magnitude)


def column_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    desc: str = "",
    formatter: Formatter | None = None,
    category_header: str | None = None,
    table: bool = True,
    ident: str | None = None,
    keys: Sequence[str] | None = None,
) -> Markup:
    """Vertical columns: for each category (a month, a plan) one column per series side by
    side (plan and actual; weighted and historical forecast), with a legend and a value axis.
    ``series[i].values`` are in the order of ``categories``; ``keys`` (optional, same order)
    are the categories' language-independent names (``data-key``)."""
    chart = _Chart(title, desc or title, _ident("columns", title, list(categories), ident))
    if not categories or not series:
        return _empty(chart, "columns")
    peak = max((_number(v) for s in series for v in s.values), default=0.0)
    axis_max = _nice(peak)
    ticks = [(fraction, _format(_tick(axis_max * fraction), formatter)) for fraction in (0.0, 0.5, 1.0)]
    # The value axis' labels end 6px left of the plot: the left margin holds the longest one.
    legend_h, right, top = 26, 10, 10
    left = max(40.0, 12 + max(text_width(t) for _f, t in ticks))
    plot_h = 220
    plot_w = WIDTH - left - right
    slot = plot_w / len(categories)
    # Category labels: level while they fit their slot; else turned, and when even turned ones
    # would touch, only every n-th written (the table below and each column's tooltip name all).
    shown = [_short(c) for c in categories]
    longest = max(text_width(t) for t in shown)
    angle = 0 if longest + X_LABEL_GAP <= slot else X_LABEL_ANGLE
    every = 1 if angle == 0 or slot >= X_LABEL_PITCH else -(-X_LABEL_PITCH // slot)
    every = int(every)
    if angle:
        rad = math.radians(angle)
        bottom = 12 + longest * math.sin(rad) + 12 * math.cos(rad) + 6
        # A turned label ends at its column and reaches down-left: the first one stays inside.
        reach = text_width(shown[0]) * math.cos(rad) - slot / 2 + 2
        if reach > left:
            left = reach
            plot_w = WIDTH - left - right
            slot = plot_w / len(categories)
    else:
        bottom = 40.0
    height = int(legend_h + top + plot_h + bottom + 0.999)
    gap = min(slot * 0.2, 24)
    col_w = max((slot - gap) / len(series), 1.0)
    _open_svg(chart, "columns", height)
    # Legend: a swatch and the series' name (the name, not the colour, tells them apart).
    x = left
    chart.parts.append('<g class="legend">')
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        chart.parts.append(f'<rect x="{x:.1f}" y="6" width="12" height="12" fill="{colour}"></rect>')
        chart.parts.append(_text(x + 16, 16, s.name))
        x += 28 + 7 * len(s.name)
    chart.parts.append("</g>")
    base_y = legend_h + top + plot_h
    # Value axis: 0, half, max.
    for fraction, tick_text in ticks:
        y = base_y - plot_h * fraction
        chart.parts.append(
            f'<line x1="{left:.1f}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7ec"></line>'
        )
        chart.parts.append(_text(left - 6, y + 4, tick_text, anchor="end"))
    for c, category in enumerate(categories):
        x0 = left + c * slot + gap / 2
        chart.parts.append(f'<g class="category" data-category="{_a(category)}">')
        for i, s in enumerate(series):
            value = s.values[c] if c < len(s.values) else None
            h = plot_h * _number(value) / axis_max
            if value is not None and _number(value) > 0:
                h = max(h, 2.0)
            chart.parts.append(
                _rect(
                    x0 + i * col_w,
                    base_y - h,
                    col_w - 2,
                    h,
                    label=category,
                    value=value,
                    formatted=_format(value, s.formatter or formatter),
                    series=s.name,
                    colour=PALETTE[i % len(PALETTE)],
                    key=keys[c] if keys and c < len(keys) else "",
                    series_key=s.key,
                )
            )
        centre = x0 + (slot - gap) / 2
        if c % every == 0:
            if angle:
                chart.parts.append(_text(centre + 4, base_y + 12, shown[c], anchor="end", angle=angle))
            else:
                chart.parts.append(_text(centre, base_y + 16, shown[c], anchor="middle"))
        chart.parts.append("</g>")
    rows = [
        [category]
        + [_format(s.values[c] if c < len(s.values) else None, s.formatter or formatter) for s in series]
        for c, category in enumerate(categories)
    ]
    head = [category_header or i18n.gettext(N_("Item")), *[s.name for s in series]]
    return _finish(chart, _table(chart, head, rows) if table else "")


def _tick(value: float) -> int | Decimal:
    return int(value) if value == int(value) else Decimal(str(round(value, 2)))


__all__ = ["Datum", "Series", "bar_chart", "column_chart", "funnel_chart", "machine_value"]
