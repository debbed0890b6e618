"""The reading companion in a real browser (Chromium via Playwright, `python app.py` as a subprocess, as in
tests/test_browser.py): under a spoiler limit of chapter 2, a hidden answer is "not yet", an answer's quote
opens in the Reader with its neighbours, the Story so far stops at chapter 2, the People panel lists only
who has appeared by then (with a chart) and a name asks about them, and the conversation exports.

Set VIGNETTE_SCREENSHOT_DIR=folder to keep screenshots of the three panels (docs/ holds the README's).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.sample_library import copy_sample_to
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, AppServer, bot_messages, choose, open_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (CI installs it with apt)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-reading")
    app = AppServer(copy_sample_to(folder / "data"), folder / "app.log")
    app.start()
    yield app
    app.stop()
    assert not app.network_attempts(), f"the app tried to reach the network: {app.network_attempts()}"


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        yield open_app(context, server.url)
        context.close()
        browser.close()


def shot(page, name: str, locator=None) -> None:
    folder = os.environ.get("VIGNETTE_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (locator or page).screenshot(path=str(Path(folder) / f"{name}.png"))


def ask(page, text: str, wait_for: str):
    before = bot_messages(page).count()
    page.locator("#vignette-message textarea").fill(text)
    page.locator("#vignette-message textarea").press("Enter")
    page.wait_for_function(f"document.querySelectorAll(\"#vignette-chat [data-testid='bot']\").length > {before}",
                           timeout=120_000)
    message = bot_messages(page).filter(has_text=wait_for)
    message.first.wait_for(timeout=180_000)
    return message.last


def test_not_yet_then_a_citation_opens_in_the_reader(page):
    choose(page, "#vignette-upto", re.compile(r"^Chapter 2 \u2014"))
    page.wait_for_timeout(1500)  # saved on change
    hidden = ask(page, "Who is Captain Dunmore?", "tells you later")
    assert "after chapter 2" in hidden.inner_text() and "Marigold" not in hidden.inner_text()

    answer = ask(page, "How old is Toby?", "Chapter 1")
    assert "sixteen" in answer.inner_text()
    answer.click()
    reader = page.locator("#vignette-reader")
    reader.locator("mark").first.wait_for(timeout=60_000)
    assert "Toby was sixteen" in reader.locator("mark").first.inner_text()
    assert "The Seven Bells of Saltmarrow" in reader.inner_text()
    assert reader.locator("p").count() >= 3  # the paragraphs around it
    shot(page, "reader", page.locator("#vignette-reading"))
    page.locator("#vignette-reader-next").click()
    page.wait_for_function("() => !document.querySelector('#vignette-reader mark')", timeout=30_000)
    assert "Chapter" in page.locator("#vignette-reader").inner_text()


def test_the_story_so_far_stops_at_the_limit(page):
    page.get_by_role("tab", name="Story so far").click()
    page.locator("#vignette-recap-button").click()
    recap = page.locator("#vignette-recap")
    recap.get_by_text("The Keeper of Gullstone Rock").wait_for(timeout=180_000)
    text = recap.inner_text()
    assert "The Seven Bells of Saltmarrow" in text and "[ch. 2]" in text
    assert "[ch. 3]" not in text and "The Letter in the Lantern Room" not in text
    shot(page, "recap", page.locator("#vignette-reading"))


def test_people_as_of_the_limit_and_a_name_asks_about_them(page):
    page.get_by_role("tab", name="People").click()
    page.locator("#vignette-people-button").click()
    people = page.locator("#vignette-people")
    people.get_by_text("Pilot").wait_for(timeout=60_000)
    names = people.inner_text()
    assert "Wren" in names and "Dunmore" not in names  # he first appears in chapter 6
    person = page.locator("#vignette-person")
    person.locator("svg rect").first.wait_for(timeout=30_000)
    assert "First appears in" in person.inner_text()
    people.get_by_text("Pilot").click()
    page.wait_for_function("() => document.querySelector('#vignette-person')?.innerText.includes('Pilot')",
                           timeout=30_000)
    assert "dog" in person.inner_text()
    shot(page, "people", page.locator("#vignette-reading"))
    page.locator("#vignette-person-ask").click()
    user = page.locator("#vignette-chat [data-testid='user']").filter(has_text="Who is Pilot?")
    user.first.wait_for(timeout=60_000)


def test_the_conversation_exports_as_markdown(page, tmp_path):
    page.get_by_role("tab", name="Export").click()
    page.locator("#vignette-export").click()
    link = page.locator("#vignette-export-file a").first
    link.wait_for(timeout=60_000)
    with page.expect_download() as download:
        link.click()
    path = tmp_path / "conversation.md"
    download.value.save_as(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# The Keeper's Promise") and "How old is Toby?" in text and "> Toby was sixteen" in text
