"""A book full of markup, in a real browser: its title in the upload notice, its quotes and its chapter titles
in the chat are shown as the literal text, and nothing in it makes the browser fetch anything beyond the app
(`python app.py` as a subprocess, Debian's Chromium through Playwright, as in test_browser.py)."""

from __future__ import annotations

import pytest

from tests.sample_library import copy_sample_to
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, AppServer, bot_messages, open_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
]

TRAP = "127.0.0.9:9"  # nothing listens there; a request to it is what the test looks for
TITLE = f"The Harbour <img src=http://{TRAP}/title.png> Ledger"
BOOK = f"""{TITLE}

CHAPTER I. The <b>Quay</b> and _the_ [Map](http://{TRAP}/chapter)

The harbour master Tobias Crane signed <by the old keeper> the ledger of the ships every evening.

A notice on the customs door read <img src="http://{TRAP}/notice.png"> in faded red paint.

CHAPTER II. The Desk

In his desk Crane kept a [secret chart](http://{TRAP}/chart) and a [lucky charm](javascript:alert(1)) and a note that said <script>document.title='owned'</script> beside his pipe.

The gulls circled the masts of the fishing boats all through the grey afternoon.
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-text")
    app = AppServer(copy_sample_to(folder / "data"), folder / "app.log")
    app.start()
    yield app
    app.stop()
    assert not app.network_attempts(), f"the app tried to reach the network: {app.network_attempts()}"


def ask(page, question: str, expect: str):
    before = bot_messages(page).count()
    page.locator("#vignette-message textarea").fill(question)
    page.locator("#vignette-message textarea").press("Enter")
    page.wait_for_function(
        "([n, words]) => { const all = document.querySelectorAll(\"#vignette-chat [data-testid='bot']\");"
        " return all.length > n && all[all.length - 1].innerText.includes(words) }",
        arg=[before, expect], timeout=180_000)
    return bot_messages(page).last


def test_book_markup_is_shown_as_text_and_fetches_nothing(server, tmp_path):
    """Quotes, chapter titles and the upload notice show <img>, <script>, Markdown and javascript: links literally."""
    from playwright.sync_api import sync_playwright

    path = tmp_path / "harbour.txt"
    path.write_text(BOOK, encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        requests: list[str] = []
        context.on("request", lambda request: requests.append(request.url))
        page = open_app(context, server.url)

        # 1. The upload notice names the title as it is.
        page.locator("#vignette-add-book").click()
        page.locator("#vignette-upload input[type=file]").set_input_files(str(path))
        notice = page.get_by_text("is ready as", exact=False)
        notice.first.wait_for(timeout=180_000)
        assert TITLE in notice.first.inner_text()
        page.wait_for_function(
            "() => document.querySelector('#vignette-book input')?.value.includes('The Harbour')", timeout=60_000)

        # 2. Quotes and chapter titles in the chat, word for word.
        signed = ask(page, "What did the harbour master sign every evening?", "the ledger").inner_text()
        assert "signed <by the old keeper> the ledger" in signed
        assert f"The <b>Quay</b> and _the_ [Map](http://{TRAP}/chapter)" in signed
        notice_text = ask(page, "What did the notice on the customs door read?", "faded red paint").inner_text()
        assert f'<img src="http://{TRAP}/notice.png">' in notice_text
        desk = ask(page, "What did Crane keep in his desk beside his pipe?", "beside his pipe").inner_text()
        assert f"[secret chart](http://{TRAP}/chart)" in desk
        assert "[lucky charm](javascript:alert(1))" in desk
        assert "<script>document.title='owned'</script>" in desk

        # 3. Nothing became markup: no links, no images from the book, no script ran, no request left the app.
        chat = page.locator("#vignette-chat")
        assert chat.locator(f"a[href*='{TRAP}'], a[href^='javascript:'], img[src*='{TRAP}'], b").count() == 0
        assert page.title() != "owned"
        page.wait_for_timeout(1000)
        origin = server.url.rstrip("/")
        outside = [url for url in requests if not url.startswith((origin, "data:", "blob:"))]
        assert outside == [], outside
        context.close()
        browser.close()
