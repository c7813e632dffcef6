"""Server-rendered SVG charts (tessera.web.charts): the data a reader and a test can get out of
the SVG, accessibility (title, desc, labelled image, data table), escaping and locale formats."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from tessera import i18n
from tessera.web import charts


def _tree(markup: str) -> ET.Element:
    # The figure is well-formed XML (every element closed, every text escaped).
    return ET.fromstring(str(markup).replace('xmlns="http://www.w3.org/2000/svg" ', ""))


def _data(markup: str) -> list[dict[str, str]]:
    return [dict(r.attrib) for r in _tree(markup).iter("rect") if r.get("class") == "datum"]


@pytest.fixture(autouse=True)
def _english() -> None:
    i18n.activate("en")


def test_funnel_chart_carries_each_stage_in_order_with_its_value() -> None:
    out = charts.funnel_chart(
        "Sales funnel",
        [charts.Datum("Qualification", 4), charts.Datum("Needs", 2), charts.Datum("Proposal", 0)],
        desc="Deals that reached each stage",
    )
    data = _data(out)
    assert [(d["data-label"], d["data-value"]) for d in data] == [
        ("Qualification", "4"),
        ("Needs", "2"),
        ("Proposal", "0"),
    ]
    widths = [float(d["width"]) for d in data]
    assert widths[0] == 2 * widths[1] and widths[2] == 0
    # Centred on one axis: each bar's middle is the same point.
    middles = {round(float(d["x"]) + float(d["width"]) / 2, 1) for d in data}
    assert len(middles) == 1
    svg = _tree(out).find("svg")
    assert svg is not None and svg.get("role") == "img"
    title_id, desc_id = svg.get("aria-labelledby", "").split()
    assert svg.find("title").text == "Sales funnel" and svg.find("title").get("id") == title_id  # type: ignore[union-attr]
    assert svg.find("desc").text == "Deals that reached each stage" and svg.find("desc").get("id") == desc_id  # type: ignore[union-attr]
    # The data table fallback has the same figures.
    rows = [[c.text for c in tr] for tr in _tree(out).iter("tr")][1:]
    assert rows == [["Qualification", "4"], ["Needs", "2"], ["Proposal", "0"]]


def test_bar_chart_escapes_labels_and_links_bars() -> None:
    out = charts.bar_chart(
        "Activities <per> manager",
        [
            charts.Datum('<script>alert("x")</script>', 3, href="/app/x?a=1&b=2"),
            charts.Datum("Boris & Co", 1),
        ],
    )
    text = str(out)
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "Activities &lt;per&gt; manager" in text
    data = _data(out)
    assert data[0]["data-label"] == '<script>alert("x")</script>' and data[1]["data-label"] == "Boris & Co"
    links = [a.get("href") for a in _tree(out).iter("a")]
    assert links == ["/app/x?a=1&b=2"]
    assert float(data[0]["width"]) == pytest.approx(3 * float(data[1]["width"]), abs=0.2)


def test_values_are_formatted_per_locale_and_exact_in_data_attributes() -> None:
    def money(value: object) -> str:
        return i18n.format_money(value, "RUB")

    data = [charts.Datum("Anna", Decimal("125000.50"))]
    i18n.activate("ru")
    ru = _data(charts.bar_chart("Выручка", data, formatter=money))[0]
    i18n.activate("en")
    en = _data(charts.bar_chart("Revenue", data, formatter=money))[0]
    assert ru["data-value"] == en["data-value"] == "125000.50"
    assert ru["data-formatted"].replace("\xa0", " ") == "125 000,50 ₽"
    assert en["data-formatted"] == "RUB125,000.50"
    i18n.activate("uk")
    table = str(charts.bar_chart("Виторг", data, formatter=money))
    assert "Діаграма таблицею" in table  # the fallback's summary in the reader's language


def test_column_chart_has_one_column_per_series_and_category() -> None:
    out = charts.column_chart(
        "Plan vs actual",
        ["2026-03", "2026-04"],
        [charts.Series("Plan", [Decimal("1000"), Decimal("2000")]), charts.Series("Actual", [1500.5, None])],
        category_header="Month",
    )
    data = _data(out)
    got = [(d["data-series"], d["data-label"], d["data-value"]) for d in data]
    assert got == [
        ("Plan", "2026-03", "1000"),
        ("Actual", "2026-03", "1500.5"),
        ("Plan", "2026-04", "2000"),
        ("Actual", "2026-04", ""),
    ]
    heights = {(d["data-series"], d["data-label"]): float(d["height"]) for d in data}
    assert heights[("Plan", "2026-04")] == 2 * heights[("Plan", "2026-03")]
    assert heights[("Actual", "2026-04")] == 0
    legend = [t.text for g in _tree(out).iter("g") if g.get("class") == "legend" for t in g.iter("text")]
    assert legend == ["Plan", "Actual"]
    head = [th.text for th in _tree(out).iter("th")][:3]
    assert head == ["Month", "Plan", "Actual"]


def test_an_empty_chart_says_so_and_a_chart_can_leave_the_table_to_the_page() -> None:
    empty = charts.column_chart("Forecast", [], [])
    assert "No data to show" in str(empty) and _data(empty) == []
    bare = charts.bar_chart("Bars", [charts.Datum("a", 1)], table=False)
    assert "<table" not in str(bare) and len(_data(bare)) == 1
    # Ids are stable (tests and anchors) and differ between charts.
    assert charts.bar_chart("A", [charts.Datum("a", 1)]) == charts.bar_chart("A", [charts.Datum("a", 1)])
    assert _tree(charts.bar_chart("A", [])).get("id") != _tree(charts.bar_chart("B", [])).get("id")


def test_keys_name_values_independently_of_the_language() -> None:
    bars = charts.funnel_chart("F", [charts.Datum("Квалификация", 2, key="qualification")])
    assert _data(bars)[0]["data-key"] == "qualification"
    columns = charts.column_chart(
        "C", ["Апрель 2026"], [charts.Series("Взвешенный", [10], key="weighted")], keys=["2026-04"]
    )
    datum = _data(columns)[0]
    assert (datum["data-key"], datum["data-series-key"], datum["data-value"]) == ("2026-04", "weighted", "10")


def _labels(markup: str) -> tuple[ET.Element, list[ET.Element], list[ET.Element]]:
    tree = _tree(markup)
    texts = list(tree.iter("text"))
    y_labels = [t for t in texts if t.get("text-anchor") == "end" and not t.get("transform")]
    x_labels = [t for g in tree.iter("g") if g.get("class") == "category" for t in g.iter("text")]
    return tree, y_labels, x_labels


def test_plan_chart_labels_do_not_overlap_and_value_labels_fit() -> None:
    """The plans chart (long "who, period" labels, money on the value axis): the value axis'
    labels fit inside the figure, and the category labels neither overlap nor leave it."""
    categories = [f"Анна Ковальчук {i}, Dec 1, 2026 – Dec 31, 2026" for i in range(4)]
    money = lambda v: i18n.format_money(v, "RUB")  # noqa: E731
    out = charts.column_chart(
        "Plan vs actual",
        categories,
        [
            charts.Series("Plan", [Decimal("1500000.00")] * 4),
            charts.Series("Actual", [Decimal("0")] * 4),
        ],
        formatter=money,
    )
    tree, y_labels, x_labels = _labels(out)
    [svg] = tree.iter("svg")
    height = float(svg.get("viewBox").split()[3])
    assert len(y_labels) == 3
    for t in y_labels:  # right-aligned at x: the whole text lies between 0 and x
        assert float(t.get("x")) - charts.text_width(t.text) >= 0, t.text
    assert len(x_labels) == 4
    xs = [float(t.get("x")) for t in x_labels]
    for t in x_labels:
        # Too long to stand level in their columns: turned, ending at their column, so their
        # lower-left ends and their bottoms stay inside the figure.
        assert t.get("transform", "").startswith("rotate(-45")
        reach = charts.text_width(t.text) * 0.7072
        assert float(t.get("x")) - reach >= 0
        assert float(t.get("y")) + reach <= height
    assert min(b - a for a, b in itertools.pairwise(xs)) >= charts.X_LABEL_PITCH


def test_short_column_labels_stay_level_and_many_are_thinned() -> None:
    months = ["Jan", "Feb", "Mar"]
    level = charts.column_chart("Won", months, [charts.Series("Won", [1, 2, 3])])
    _t, _y, x_labels = _labels(level)
    assert [t.text for t in x_labels] == months and not any(t.get("transform") for t in x_labels)
    xs = [float(t.get("x")) for t in x_labels]
    assert all(b - a >= charts.text_width("Mar") + charts.X_LABEL_GAP for a, b in itertools.pairwise(xs))
    days = [f"2026-12-{d:02d}" for d in range(1, 61)]
    many = charts.column_chart("Daily", days, [charts.Series("Won", list(range(60)))])
    _t, _y, x_labels = _labels(many)
    xs = [float(t.get("x")) for t in x_labels]
    assert 1 < len(x_labels) < 60  # every n-th day written, the table holds them all
    assert min(b - a for a, b in itertools.pairwise(xs)) >= charts.X_LABEL_PITCH
    assert all(d in str(many) for d in days)
