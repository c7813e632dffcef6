"""Reports, the report builder, KPIs, dashboards and scheduled reports (issue 21,
docs/analytics.md). Plugins declare reports through ``tessera_reports()``."""

from __future__ import annotations

from tessera.reports.framework import (
    Dimension,
    Measure,
    Ratio,
    Report,
    column,
    describe,
    drill_down,
    percent,
    register_list_dates,
    run_report,
)

__all__ = [
    "Dimension",
    "Measure",
    "Ratio",
    "Report",
    "column",
    "describe",
    "drill_down",
    "percent",
    "register_list_dates",
    "run_report",
]
