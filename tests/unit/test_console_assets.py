"""The console's front-end files: pinned third-party code whose integrity is checked, every
file shipped in the package, every tag carrying its integrity, charts that say what they show."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from api.console.assets import ASSETS, STATIC_DIR, TEMPLATES_DIR, integrity, integrity_of
from api.console.charts import Bar, bar_chart

ROOT = Path(__file__).resolve().parents[2]


def test_vendored_files_match_their_pinned_integrity() -> None:
    pinned = {name: sri for name, sri in ASSETS.items() if sri}
    assert pinned, "third-party files must be pinned"
    for name, sri in pinned.items():
        assert integrity_of(STATIC_DIR / name) == sri, f"{name} changed: re-vendor and re-pin it"
        assert re.search(r"-\d+\.\d+\.\d+(\.min)?\.js$", name), "vendored names carry a version"


def test_every_static_file_is_listed_and_nothing_listed_is_missing() -> None:
    on_disk = {p.name for p in STATIC_DIR.iterdir() if p.is_file()}
    assert on_disk == set(ASSETS)


def test_static_files_and_templates_ship_in_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["api.console"]
    base = STATIC_DIR.parent
    for path in [*STATIC_DIR.iterdir(), *TEMPLATES_DIR.iterdir()]:
        rel = path.relative_to(base).as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), f"{rel} would not be installed"


def test_pages_load_scripts_and_styles_only_from_here_with_integrity() -> None:
    base = (TEMPLATES_DIR / "base.html").read_text()
    tags = re.findall(r'<(?:script\b|link rel="stylesheet")[^>]*>', base)
    assert len(tags) == 3
    for tag in tags:
        src = re.search(r'(?:src|href)="([^"]+)"', tag)
        assert src and src.group(1).startswith("/console/static/"), tag
        assert "integrity=" in tag, tag
    for template in TEMPLATES_DIR.glob("*.html"):
        assert "http://" not in template.read_text() and "https://" not in template.read_text()


def test_own_files_are_hashed_as_they_are() -> None:
    assert integrity("console.css") == integrity_of(STATIC_DIR / "console.css")


def test_bar_chart_scales_bars_and_describes_itself() -> None:
    svg = str(
        bar_chart("Requests <per day>", [Bar("a", 1, "1"), Bar("b", 4, "4"), Bar("c", 0, "0")])
    )
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert heights[1] == max(heights) and abs(heights[0] * 4 - heights[1]) < 0.5
    assert heights[2] == 0
    assert 'role="img"' in svg
    assert "<title" in svg and "a: 1; b: 4; c: 0" in svg  # text alternative
    assert "<per day>" not in svg and "&lt;per day&gt;" in svg  # labels are escaped


def test_bar_chart_without_data_still_renders() -> None:
    assert "no data" in str(bar_chart("Empty", []))


def test_charts_on_one_page_have_distinct_ids_and_long_labels_are_cut() -> None:
    first = str(bar_chart("A", [Bar("x", 1, "1")]))
    second = str(bar_chart("B", [Bar("x", 1, "1")]))
    ids = re.findall(r'id="([^"]+)"', first + second)
    assert len(ids) == len(set(ids)) == 4
    many = str(bar_chart("Keys", [Bar(f"a-very-long-key-name-{i}", i, str(i)) for i in range(30)]))
    labels = re.findall(r'class="label" text-anchor="middle">([^<]+)<', many)
    assert labels and all(len(lbl) < 25 for lbl in labels)
    assert "a-very-long-key-name-29: 29" in many  # the full names stay in the text alternative
