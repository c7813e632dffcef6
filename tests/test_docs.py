"""Documentation that cannot drift: every hook in tessera.hookspecs has a section in
docs/plugin_hooks.md headed by its exact signature (as Datasette's test does)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from tessera import hookspecs

ROOT = Path(__file__).resolve().parents[1]


def _hooks() -> dict[str, str]:
    out = {}
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("tessera_"):
            params = ", ".join(inspect.signature(fn).parameters)
            out[name] = f"{name}({params})"
    return out


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    text = (ROOT / "docs" / "plugin_hooks.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^### `(tessera_\w+\([^)]*\))`", text, flags=re.M))
    hooks = _hooks()
    assert hooks, "no hooks found"
    missing = sorted(sig for sig in hooks.values() if sig not in headings)
    stale = sorted(h for h in headings if h not in set(hooks.values()))
    assert not missing, f"hooks missing from docs/plugin_hooks.md (or with other arguments): {missing}"
    assert not stale, f"docs/plugin_hooks.md documents hooks that do not exist: {stale}"


def test_every_hook_has_a_docstring() -> None:
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("tessera_"):
            assert fn.__doc__ and len(fn.__doc__.strip()) > 40, (
                f"{name} needs a docstring saying when and what"
            )


def test_readme_shows_the_two_setup_commands_first() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```", 2)[1]
    assert "./run demo" in first_block and "./run test" in first_block
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "./run test" in ci
