"""docs/plugins.md works when followed literally: in an empty directory, every ``bash`` block
of the tutorial is run and every file block (``# file:`` / ``# append to:``) is written, in
page order. ``pip install`` goes to a private target directory put on ``PYTHONPATH`` (with uv
when available, else by copying the package and its entry points), so the shared test
environment is left as it was."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"


def tutorial_blocks() -> list[tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Write your first plugin", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```(\w+)\n(.*?)^```", section, flags=re.M | re.S)


def _uv() -> str | None:
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(ROOT / ".tools" / "bin" / "uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _install(project: Path, site: Path) -> None:
    uv = _uv()
    if uv:
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(project)], check=True
        )
        return
    # No uv: the same result by hand — the package on the path plus its entry points.
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for package in meta.get("entry-points", {}).get("tessera.plugins", {}).values():
        top = package.split(".")[0]
        shutil.copytree(project / top, site / top, dirs_exist_ok=True)
    dist = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    lines = ["[tessera.plugins]"] + [f"{k} = {v}" for k, v in meta["entry-points"]["tessera.plugins"].items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


def _run(command: str, cwd: Path, site: Path) -> Path:
    words = shlex.split(command)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "PYTEST_"))}
    env["PYTHONPATH"] = str(site)
    if words[0] == "cd":
        return cwd / words[1]
    if words[:2] == ["pip", "install"]:
        target = words[-1]
        _install((cwd / target).resolve(), site)
        return cwd
    if words[0] == "tessera":
        argv = [sys.executable, "-m", "tessera.cli", *words[1:]]
    elif words[0] == "pytest":
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *words[1:]]
    else:
        raise AssertionError(f"the tutorial runs a command this test does not know: {command}")
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"`{command}` failed in {cwd}:\n{done.stdout}\n{done.stderr}"
    return cwd


def test_the_tutorial_produces_a_working_plugin(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    site = tmp_path / "site"
    site.mkdir()
    cwd = work
    ran: list[str] = []
    written: list[str] = []
    for lang, body in tutorial_blocks():
        if lang == "bash":
            for line in body.splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    cwd = _run(line, cwd, site)
                    ran.append(line)
        elif lang == "python":
            first, _, rest = body.partition("\n")
            if match := re.fullmatch(r"# file: (\S+)", first.strip()):
                path = cwd / match.group(1)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(rest, encoding="utf-8")
            elif match := re.fullmatch(r"# append to: (\S+)", first.strip()):
                path = cwd / match.group(1)
                assert path.is_file(), f"the tutorial appends to {path}, which does not exist"
                path.write_text(path.read_text(encoding="utf-8") + rest, encoding="utf-8")
            else:
                continue
            written.append(match.group(1))
    # The page must keep teaching the whole loop: scaffold, code, install, test, contract.
    assert ran[0] == "tessera plugins new visits"
    assert "pytest" in ran and "pytest --tessera-contract visits" in ran
    assert "tests/test_count.py" in written
    assert (site / "tessera_visits" / "plugin.py").is_file()
