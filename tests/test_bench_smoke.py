"""The benchmarks run at a tiny size so none of them rots: a benchmark that no longer runs
against the current API (a renamed route, a changed table, a new required field) fails here,
not on the day someone wants the figures. Nothing here asserts on time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LATENCY = ("party_list", "client_card", "search", "create_party")
THROUGHPUT = ("party_list_rps", "create_party_rps")
SERVERS = ("ours", "bare", "crud")


def run_bench(script: str, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("TESSERA_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


#: The smoke proves every measure runs against the current API and is reported, not how fast:
#: 8 requests per latency measure and half a second per throughput run, for each of the three
#: servers (``--quick`` alone: 20 requests and 1.5 s; the throughput runs keep both cores busy,
#: and this test runs the benchmark twice). Side by side: 33.4 -> 28.3 CPU-s, 237 -> 205 s.
SMOKE = ("--size", "200", "--sqlite-only", "--quick", "--requests", "8", "--duration", "0.5")


def test_run_py_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    result = run_bench(
        "run.py",
        *SMOKE,
        "--out",
        str(out),
        "--workdir",
        str(tmp_path / "work"),
        "--keep",
        cwd=tmp_path,
    )
    data = json.loads(out.read_text())
    machine = data["machine"]
    for key in ("cpu", "cores", "ram_gib", "os", "python", "sqlite"):
        assert machine[key], key
    assert data["size"]["parties"] == 200
    assert data["size"]["activities"] == 1000
    assert set(data["engines"]) == {"sqlite"}
    engine = data["engines"]["sqlite"]
    assert engine["counts"]["parties"] == 200
    assert engine["seed"]["rows"] >= 1200
    for name in LATENCY:
        measure = engine["measures"][name]
        for server in SERVERS:
            figures = measure[server]
            # Every request succeeded: the benchmark still speaks the current API.
            assert figures["errors"] == 0, (name, server, figures.get("first_error"))
            assert 0 < figures["p50_ms"] <= figures["p95_ms"], (name, server, figures)
        for ratio in ("ratio_p50_vs_bare", "ratio_p95_vs_bare", "ratio_p50_vs_crud", "ratio_p95_vs_crud"):
            assert measure[ratio] > 0, (name, ratio)
    for name in THROUGHPUT:
        measure = engine["measures"][name]
        for server in SERVERS:
            assert measure[server]["errors"] == 0, (name, server, measure[server].get("first_error"))
            assert measure[server]["rps"] > 0, (name, server)
        assert measure["pct_of_bare"] > 0 and measure["pct_of_crud"] > 0
    # Targets are stated at 1M parties (100,000 import rows): a tiny run judges none of them.
    for target in ("party_list_p95_ms", "list_throughput_pct_of_bare", "create_throughput_pct_of_bare"):
        verdict = engine["targets"][target]
        assert (verdict["verdict"], verdict["pass"], verdict["size"]) == ("not judged", False, 200), verdict
        assert f"target {target}: " in result.stdout
    assert result.stdout.count("-> not judged (size 200 < 1,000,000)") == 3, result.stdout[-3000:]
    assert "PASS" not in result.stdout
    imported = data["import"]
    assert "available" in imported
    if imported["available"]:
        assert imported.get("rows") == 1000, imported
        assert imported["rows_per_s"] > 0
        assert imported["verdict"] == "not judged" and imported["pass"] is False
        assert "-> not judged (size 1,000 < 100,000)" in result.stdout
    # The figures are printed, each next to its baselines.
    assert "party_list" in result.stdout and "ours/bare" in result.stdout
    assert engine["reused"] is None and "REUSED" not in result.stdout

    # Measured again on the kept data set: the load figures are labelled as the first run's,
    # and the rows are counted afresh (the first run's create measures added parties).
    built_at = json.loads((tmp_path / "work" / "seed-SQLite.json").read_text())["built_at"]
    again = run_bench(
        "run.py",
        *SMOKE,
        "--out",
        str(out),
        "--workdir",
        str(tmp_path / "work"),
        "--reuse",
        cwd=tmp_path,
    )
    reused = json.loads(out.read_text())["engines"]["sqlite"]
    assert reused["reused"]["built_at"] == built_at
    assert f"REUSED from the run of {built_at}" in again.stdout
    assert reused["counts_when_built"]["parties"] == 200
    created = sum(engine["measures"]["create_party"][server]["n"] for server in SERVERS)
    assert reused["counts"]["parties"] >= 200 + created, reused["counts"]
    assert reused["counts"]["activities"] == 1000


@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        (
            "search.py",
            ("--size", "300", "--whoosh-size", "300", "--queries", "5", "--backends", "whoosh"),
            "whoosh",
        ),
        ("sales.py", ("--size", "200"), "funnel"),
        ("service.py", ("--size", "200"), "sla_scan"),
        ("reports.py", ("--size", "500", "--managers", "10"), "manager x month"),
        ("marketing.py", ("--size", "300"), "abc/xyz recompute"),
        ("knowledge_base.py", ("--rules", "20", "--articles", "50"), "rule evaluation"),
        ("receivables.py", ("--size", "200"), "ageing"),
        ("workflow.py", ("--size", "200", "--transitions", "5"), "deviation"),
        ("importer.py", ("--rows", "300"), "rows/s"),
        ("integrations.py", ("--deliveries", "20", "--rows", "300"), "deliveries/s"),
    ],
)
def test_other_benchmarks_run_at_a_tiny_size(
    tmp_path: Path, script: str, args: tuple[str, ...], expect: str
) -> None:
    result = run_bench(script, *args, cwd=tmp_path)
    assert expect in result.stdout.lower(), result.stdout[-2000:]
