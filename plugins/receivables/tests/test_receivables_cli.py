"""``tessera receivables import FILE`` in a child process (SQLite): a cp1251 CSV from
accounting imports the good rows and lists the bad one with its reason; the same file again
changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CSV = (
    "Тип;Внешний ID;ИНН;Номер;Дата;Срок оплаты;Сумма\n"
    "invoice;1C-1;7701234567;001;10.01.2026;10.02.2026;1200.50\n"
    "invoice;1C-2;7701234567;002;32.01.2026;10.02.2026;100\n"
    "payment;PAY-1;7701234567;;01.02.2026;;200.50\n"
)


def tessera(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env |= {
        "TESSERA_CONFIG": str(tmp_path / "absent.toml"),
        "TESSERA_DATA_DIR": str(tmp_path / "data"),
        "TESSERA_PLUGINS": "receivables",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "tessera.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_command_reports_bad_rows_and_is_idempotent(tmp_path: Path) -> None:
    assert tessera(tmp_path, "migrate").returncode == 0
    parties = tmp_path / "parties.json"
    parties.write_text(json.dumps([{"external_id": "C1", "name": "Romashka", "tax_id": "7701234567"}]))
    assert tessera(tmp_path, "accounting", "import", str(parties)).returncode == 0
    file = tmp_path / "export.csv"
    file.write_bytes(CSV.encode("cp1251"))

    first = tessera(tmp_path, "receivables", "import", str(file))
    assert first.returncode == 1, first.stderr
    report = json.loads(first.stdout)
    assert (report["created"], report["updated"], report["unchanged"]) == (2, 0, 0)
    assert [(r["line"], r["external_id"], r["errors"][0]["field"]) for r in report["rejected"]] == [
        (3, "1C-2", "date")
    ]
    assert "line 3 1C-2: date" in first.stderr and "3/3" in first.stderr  # reason, progress bar

    again = tessera(tmp_path, "receivables", "import", str(file), "--quiet")
    assert json.loads(again.stdout)["unchanged"] == 2 and json.loads(again.stdout)["created"] == 0
    missing = tessera(tmp_path, "receivables", "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2
