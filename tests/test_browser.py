"""The app in a real browser: Debian's Chromium driven by Playwright, against `python app.py` started as a
subprocess on 127.0.0.1 (a private data dir, the tiny-random image models, the network guard loaded).

A reader asks about the sample novel and sees the answer with its chapter, presses Illustrate and sees
the picture in the chat and the gallery; the conversation is still there after the app restarts, and a
second browser does not see it; a bad upload is refused with a message and a good one becomes a book.

Set VIGNETTE_SCREENSHOT=path to keep a screenshot of the page after the picture (docs/screenshot.png is
made this way).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.sample_library import copy_sample_to

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
NETGUARD_DIR = Path(__file__).resolve().parent / "netguard"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUESTION = "How long did the fishermen of Saltmarrow save to buy a new bell?"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"no Chromium at {CHROMIUM} (CI installs it with apt in .ci/run)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`python app.py` on a fixed port (a restart keeps the browser's origin, so its localStorage)."""

    def __init__(self, data_dir: Path, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        self.env = dict(os.environ)
        self.env.update({
            "PYTHONPATH": os.pathsep.join([str(NETGUARD_DIR), str(ROOT), self.env.get("PYTHONPATH", "")]),
            "VIGNETTE_DATA_DIR": str(data_dir),
            "VIGNETTE_IMAGE_MODELS": "tiny-random",
            "VIGNETTE_NETGUARD_LOG": str(log_path.with_suffix(".netguard")),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        })
        self.env.pop("VIGNETTE_ALLOW_DOWNLOADS", None)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 600) -> float:
        started = time.perf_counter()
        log = open(self.log_path, "a", encoding="utf-8")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"app.py exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"app.py did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def network_attempts(self) -> str:
        path = self.log_path.with_suffix(".netguard")
        return path.read_text(encoding="utf-8") if path.exists() else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    app = AppServer(copy_sample_to(folder / "data"), folder / "app.log")
    app.startup_s = app.start()
    yield app
    app.stop()
    assert not app.network_attempts(), f"the app tried to reach the network: {app.network_attempts()}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def reader(browser):
    """One reader's browser (its own localStorage, so its own session), kept across the tests."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context
    context.close()


def bot_messages(page):
    return page.locator("#vignette-chat [data-testid='bot']")


def open_app(context, url):
    page = context.new_page()
    page.goto(url)
    page.locator("#vignette-status").get_by_text("Answers:").wait_for(timeout=60_000)
    return page


def test_ask_then_illustrate(server, reader):
    page = open_app(reader, server.url)

    # 1. ask: the answer streams in with its quote and chapter
    started = time.perf_counter()
    page.locator("#vignette-message textarea").fill(QUESTION)
    page.locator("#vignette-message textarea").press("Enter")
    answer = bot_messages(page).filter(has_text="Chapter 1")
    answer.first.wait_for(timeout=120_000)
    answered_s = time.perf_counter() - started
    text = answer.first.inner_text()
    assert "nine years" in text and "Chapter 1: The Seven Bells of Saltmarrow" in text
    assert page.locator("#vignette-chat [data-testid='user']").first.inner_text().strip() == QUESTION

    # 2. a small picture, to keep the tiny-random sampler quick
    page.locator("#vignette-settings").get_by_text("Drawing settings").click()
    size = page.locator("#vignette-size input")
    size.fill("128x128")
    size.press("Enter")
    page.locator("#vignette-illustrate").click()
    picture = page.locator("#vignette-chat img")
    picture.first.wait_for(timeout=180_000)
    page.wait_for_function(
        "() => { const i = document.querySelector('#vignette-chat img');"
        " return i && i.complete && i.naturalWidth > 0 }",
        timeout=60_000)
    assert picture.first.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [128, 128]
    prompt = page.locator("#vignette-prompt textarea").input_value()
    assert prompt and "storybook" in prompt  # the scene prompt, shown for editing, with its style
    assert bot_messages(page).filter(has_text="Illustration of Chapter 1").count() == 1
    gallery = page.locator("#vignette-gallery img")
    gallery.first.wait_for(timeout=30_000)
    assert gallery.count() == 1
    assert "Chapter 1" in page.locator("#vignette-gallery").inner_text()
    shot = os.environ.get("VIGNETTE_SCREENSHOT")
    if shot:
        page.locator("#vignette-settings").get_by_text("Drawing settings").click()  # folded, for the picture
        # the question in view
        page.locator("#vignette-chat [role='log']").evaluate("log => log.scrollTop = 0")
        page.wait_for_timeout(800)
        page.screenshot(path=shot, full_page=True)
    print(f"\napp start {server.startup_s:.1f} s; first answer {answered_s:.1f} s")
    page.close()


def test_the_conversation_survives_a_restart_and_stays_private(server, reader, browser):
    server.stop()
    restart_s = server.start()
    page = open_app(reader, server.url)
    user = page.locator("#vignette-chat [data-testid='user']")
    user.first.wait_for(timeout=60_000)
    assert user.first.inner_text().strip() == QUESTION
    assert bot_messages(page).filter(has_text="Chapter 1").count() >= 1
    assert page.locator("#vignette-chat img").count() == 1  # the picture came back with it
    assert page.locator("#vignette-gallery img").count() == 1
    page.close()

    stranger = browser.new_context()
    other = open_app(stranger, server.url)
    other.wait_for_timeout(1500)
    assert other.locator("#vignette-chat [data-testid='user']").count() == 0
    assert other.locator("#vignette-gallery img").count() == 0
    stranger.close()
    print(f"\nrestart {restart_s:.1f} s")


def test_stop_cancels_a_long_drawing(server, reader):
    page = open_app(reader, server.url)
    bot_messages(page).filter(has_text="Chapter 1").first.wait_for(timeout=60_000)  # the conversation so far
    pictures = page.locator("#vignette-gallery img").count()
    page.locator("#vignette-settings").get_by_text("Drawing settings").click()
    steps = page.locator("#vignette-steps input[type=number]")
    steps.fill("60")
    steps.press("Enter")
    size = page.locator("#vignette-size input")
    size.fill("384x384")
    size.press("Enter")
    page.locator("#vignette-illustrate").click()
    page.locator("#vignette-picture img").first.wait_for(timeout=120_000)  # a preview: sampling is under way
    page.locator("#vignette-stop").click()
    page.wait_for_timeout(1500)
    assert "Error" not in page.locator("#vignette-picture").inner_text()
    assert page.locator("#vignette-gallery img").count() == pictures
    # the drawing slot is free again: a short drawing goes through
    steps.fill("2")
    steps.press("Enter")
    size.fill("64x64")
    size.press("Enter")
    page.locator("#vignette-illustrate").click()
    page.wait_for_function(f"document.querySelectorAll('#vignette-gallery img').length > {pictures}",
                           timeout=120_000)
    page.wait_for_timeout(1000)
    assert page.locator("#vignette-gallery img").count() == pictures + 1  # the stopped one never arrives
    page.wait_for_function(
        "() => { const all = document.querySelectorAll('#vignette-chat img'); const i = all[all.length - 1];"
        " return i && i.complete && i.naturalWidth > 0 }", timeout=60_000)
    last = page.locator("#vignette-chat img").last
    assert last.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [64, 64]
    page.close()


def test_uploads_bad_refused_good_added(server, reader, tmp_path):
    page = open_app(reader, server.url)
    junk = tmp_path / "scan.txt"
    junk.write_bytes(bytes(range(256)) * 40)
    page.locator("#vignette-upload input[type=file]").set_input_files(str(junk))
    error = page.get_by_text(re.compile("not a text file"))
    error.first.wait_for(timeout=60_000)
    book = page.locator("#vignette-book input")
    assert "The Keeper's Promise" in book.input_value()

    good = tmp_path / "the-glass-orchard.md"
    good.write_text(
        "# The Glass Orchard\n\n## Chapter 1. The Gate\n\nMilo Brandt opened the iron gate of the orchard at "
        "dawn.\n\n## Chapter 2. The Gardener\n\nThe gardener was a tall woman called Ada Finch, who wore a "
        "yellow hat.\n\n## Chapter 3. The Storm\n\nThat night the glass trees rang in the storm until "
        "morning.\n", encoding="utf-8")
    page.goto(server.url)  # a fresh upload box
    page.locator("#vignette-upload input[type=file]").set_input_files(str(good))
    page.wait_for_function(
        "() => document.querySelector('#vignette-book input')?.value.includes('The Glass Orchard')",
        timeout=120_000)
    assert page.locator("#vignette-upto input[type=number]").get_attribute("max") == "3"
    page.close()
