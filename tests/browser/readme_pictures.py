"""The README's pictures: the browser tests shoot them into docs/screenshots/ on every run, so
they show the pages as they are. This module imports nothing heavy, so the unit test that
checks the README against it runs without a browser."""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

# Each name is a docs/screenshots/<name>.png that a browser test writes (`shoot(page, step,
# readme=name)`) and the README shows; tests/unit/test_readme_pictures.py holds them to that.
README_PICTURES = (
    "wizard-1-type",  # test_wizard.py: the recipient's wizard, step by step
    "wizard-2-bucket",
    "wizard-3-role",
    "wizard-4-validate",
    "wizard-done",
    "operator-connections",  # test_wizard.py: the operator's pages
    "operator-connection",
    "recipient-delivery",  # test_delivery_page.py: what the link holder sees afterwards
)
