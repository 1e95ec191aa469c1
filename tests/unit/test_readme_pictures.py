"""The README's pictures are the ones the browser tests shoot: every picture it shows exists
under docs/screenshots/ and is one the tests rewrite (so it cannot go stale), and it shows
every one they shoot."""

from __future__ import annotations

import re
from pathlib import Path

from tests.browser.readme_pictures import FOLDER, README_PICTURES

ROOT = Path(__file__).resolve().parents[2]


def pictures_in(readme: str) -> list[str]:
    """The names of the docs/screenshots/ pictures a README refers to, in order."""
    return re.findall(r"\bdocs/screenshots/([^)\s\"'>]+?)\.png\b", readme)


def test_the_readme_shows_exactly_the_pictures_the_browser_tests_shoot() -> None:
    assert FOLDER == ROOT / "docs" / "screenshots"
    assert len(set(README_PICTURES)) == len(README_PICTURES)
    shown = pictures_in((ROOT / "README.md").read_text())
    assert sorted(set(shown)) == sorted(README_PICTURES)  # no stray one, none left out
    missing = [name for name in shown if not (FOLDER / f"{name}.png").is_file()]
    assert missing == [], f"run the browser tests to shoot {missing}"
    for name in README_PICTURES:
        assert (FOLDER / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_the_check_finds_pictures_and_tells_a_stray_one() -> None:
    readme = (
        "![a](docs/screenshots/wizard-1-type.png) | ![b](docs/screenshots/old-step.png)\n"
        '<img src="docs/screenshots/wizard-done.png" width="400">\n'
    )
    assert pictures_in(readme) == ["wizard-1-type", "old-step", "wizard-done"]
    assert "old-step" not in README_PICTURES
