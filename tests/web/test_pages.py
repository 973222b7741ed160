"""The server's web pages in a real headless Chromium: the profile index and the program
report figure, served by ``ivz serve`` on a database the demo filled."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IVZ, LiveServer

playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'ivz.db'}"
    subprocess.run(
        [*IVZ, "demo", "--database-url", url, "--referrals", "24", "--weeks", "2"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    live = LiveServer(url).start()
    yield live.base.removesuffix("/fhir")
    live.stop()


@pytest.fixture(scope="module")
def page(site: str) -> Iterator[playwright.Page]:
    if CHROMIUM is None:
        pytest.fail("Debian chromium is needed for the web page tests: apt-get install chromium")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        yield tab
        browser.close()
        assert errors == []


def test_the_profile_index_lists_every_profile_and_its_links_resolve(
    page: playwright.Page, site: str
) -> None:
    page.goto(f"{site}/profiles/")
    assert "IVZ FHIR profiles" in page.title()
    links = page.locator("table a")
    names = links.all_inner_texts()
    assert {"ivz-referral", "ivz-verdict", "ivz-treatment-plan", "ivz-appointment"} <= set(names)
    with page.expect_navigation():
        page.get_by_role("link", name="ivz-verdict", exact=True).first.click()
    assert '"url": "https://ivz-bridge.example/fhir/StructureDefinition/ivz-verdict"' in (
        page.content().replace('":"', '": "')
    )


def test_the_report_figure_draws_confirmed_and_not_confirmed_bars(
    page: playwright.Page, site: str, tmp_path: Path
) -> None:
    answer = page.goto(f"{site}/report/program.svg")
    assert answer is not None and answer.status == 200
    svg = page.locator("svg")
    box = svg.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    # Bars carry a <title> ("…: N confirmed (…)"); the background and legend squares do not.
    bars = page.eval_on_selector_all(
        "svg rect",
        "rects => rects.filter(r => r.querySelector('title'))"
        ".map(r => [r.querySelector('title').textContent, r.getBoundingClientRect().width])",
    )
    drawn = [title for title, width in bars if width > 0]
    assert any(" confirmed (" in t and "not confirmed" not in t for t in drawn), drawn
    assert any("not confirmed" in t for t in drawn), drawn
    labels = page.eval_on_selector_all("svg text", "ts => ts.map(t => t.textContent)")
    assert any("team-" in label for label in labels)
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 1000
