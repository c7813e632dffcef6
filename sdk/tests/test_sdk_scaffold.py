"""``tessera plugins new``: the layout, and refusals a user would hit. (That the scaffold
installs, passes its tests and the contract is shown by test_sdk_tutorial.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _tessera(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tessera.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_new_plugin_has_the_standard_layout(tmp_path: Path) -> None:
    done = _tessera("plugins", "new", "field_visits", "--dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    root = tmp_path / "tessera-field-visits"
    for part in ("plugin", "tables", "piccolo_app", "routes", "services", "jobs"):
        assert (root / "tessera_field_visits" / f"{part}.py").is_file(), part
    assert len(list((root / "tessera_field_visits" / "piccolo_migrations").glob("field_visits_*.py"))) == 1
    assert (root / "tests" / "test_field_visits.py").is_file()
    pyproject = (root / "pyproject.toml").read_text()
    assert 'field_visits = "tessera_field_visits.plugin"' in pyproject
    assert 'tablename="field_visits_entry"' in (root / "tessera_field_visits" / "tables.py").read_text()
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


def test_bad_names_and_existing_folders_are_refused(tmp_path: Path) -> None:
    for bad in ("Visits", "1st", "my-plugin", "x"):
        done = _tessera("plugins", "new", bad, cwd=tmp_path)
        assert done.returncode == 2, bad
        assert "plugin name" in done.stderr
    assert _tessera("plugins", "new", "visits", cwd=tmp_path).returncode == 0
    again = _tessera("plugins", "new", "visits", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
