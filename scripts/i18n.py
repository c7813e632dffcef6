"""Re-extract the gettext catalogues of the kernel and of the plugins in this repository
(docs/i18n.md): ``python scripts/i18n.py``.

For each package it writes ``<package>/locale/messages.pot`` (pybabel extract with
scripts/babel.cfg: ``_``, ``gettext``, ``ngettext``, ``N_`` in Python and ``{{ _("...") }}`` in
templates) and updates ``<package>/locale/<ru|uk|en>/LC_MESSAGES/messages.po`` (new texts
arrive empty, removed ones become obsolete). Then translate the empty entries;
tests/test_i18n.py fails while any Russian or Ukrainian translation is missing or fuzzy. The
``.po`` files are compiled in memory when the app starts (tessera.i18n), no build step.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.frontend import CommandLineInterface

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(__file__).resolve().parent / "babel.cfg"
LOCALES = ("ru", "uk", "en")
#: Packages with catalogues: the kernel and the plugins of this repository.
PACKAGES = [
    ROOT / "core" / "tessera",
    ROOT / "plugins" / "sales" / "tessera_sales",
    ROOT / "plugins" / "service" / "tessera_service",
    ROOT / "plugins" / "marketing" / "tessera_marketing",
    ROOT / "plugins" / "knowledge_base" / "tessera_knowledge_base",
    ROOT / "plugins" / "receivables" / "tessera_receivables",
]


def extract(package: Path) -> None:
    locale_dir = package / "locale"
    pot = locale_dir / "messages.pot"
    locale_dir.mkdir(exist_ok=True)
    cli = CommandLineInterface()
    cli.run(
        [
            "pybabel",
            "-q",
            "extract",
            "-F",
            str(CONFIG),
            "-k",
            "N_",
            "-k",
            "lazy_gettext",
            "--no-location",
            "--sort-output",
            "--omit-header",
            "-o",
            str(pot),
            str(package),
        ]
    )
    for locale in LOCALES:
        po = locale_dir / locale / "LC_MESSAGES" / "messages.po"
        command = "update" if po.exists() else "init"
        args = ["pybabel", "-q", command, "-i", str(pot), "-d", str(locale_dir), "-l", locale]
        if command == "update":
            args += ["--no-fuzzy-matching", "--ignore-obsolete"]
        CommandLineInterface().run(args)


def main() -> int:
    for package in PACKAGES:
        extract(package)
        print(f"extracted {package.relative_to(ROOT)}/locale")
    return 0


if __name__ == "__main__":
    sys.exit(main())
