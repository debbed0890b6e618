"""The app's handlers against bad input, with the real Companion over a temp data dir: book text shown as
text, file limits in MiB with decimals, uploads that need an id of their own, API session names refused
rather than altered, and a negative chapter in the chat."""

from __future__ import annotations

import html
import re
import socket
from html.parser import HTMLParser

import pytest

from tests.sample_library import copy_sample_to

MIB = 1024 * 1024

HOSTILE = [
    'signed <by the old keeper> on the quay',
    '<img src="http://127.0.0.9:9/pixel.png"> and <script>alert(1)</script> and <b>bold</b>',
    'a [Markdown link](http://127.0.0.9:9/) and [a script link](javascript:alert(1)) and ![img](x.png)',
    'bare http://127.0.0.9:9/x and www.example.com and keeper@example.com and <http://127.0.0.9/>',
    '_italic_ *stars* **bold** `code` ~~gone~~ $$x^2$$ | a | b |',
    '# not a heading\n1. not a list\n- not a bullet\n> not a quote\n    not code\n===',
    'AT&T &amp; &lt;tag&gt; back\\slash \\*',
]


class _Render(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)  # a <br /> is followed by the source's own newline

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.parametrize("text", HOSTILE)
def test_book_text_renders_as_the_same_text(text):
    """markdown_literal: Markdown with HTML (as the chat renders it) shows the words, with no tag and no link."""
    from markdown_it import MarkdownIt

    from vignette.plaintext import html_literal, markdown_literal

    md = MarkdownIt("commonmark", {"breaks": True}).enable(["table", "strikethrough"])
    parser = _Render()
    parser.feed(md.render(markdown_literal(text)))
    assert set(parser.tags) <= {"p", "br"}, parser.tags
    shown = "".join(parser.text).strip()
    assert shown == "\n".join(line.lstrip() for line in text.split("\n"))
    assert html.unescape(html_literal(text)) == text and "<" not in html_literal(text)


@pytest.fixture(scope="module")
def companion(tmp_path_factory):
    from bot.companion import Companion
    from vignette.settings import Settings

    data = copy_sample_to(tmp_path_factory.mktemp("hardening") / "data")
    companion = Companion(Settings.from_env(env={}, data_dir=data, image_models="tiny-random", reader="sentence"))
    yield companion
    companion.close()


@pytest.fixture
def handlers(companion):
    import app

    return app.VignetteApp(companion)


def test_the_file_limit_is_mib_with_decimals(handlers, tmp_path):
    """VIGNETTE_MAX_FILE_MB=1.5 starts the app, and 1.5 means 1.5 MiB in the upload box, the app and the loader."""
    import gradio as gr

    import app
    from retrieval.loading import load_book
    from vignette.settings import Settings

    settings = Settings.from_env(env={"VIGNETTE_MAX_FILE_MB": "1.5"}, data_dir=tmp_path / "data")
    assert settings.max_file_bytes == int(1.5 * MIB)
    with gr.Blocks() as demo:
        gr.Markdown("limits")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.launch(demo, settings, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        assert demo.max_file_size == int(1.5 * MIB)
    finally:
        demo.close()

    handlers.settings = handlers.c.settings = handlers.c.settings.replace(max_file_mb=1.5)
    under = tmp_path / "under.txt"  # 1.55 MB but under 1.5 MiB: past the size check, refused as binary
    under.write_bytes(bytes(range(256)) * (1_550_000 // 256))
    note = list(handlers.upload(str(under), {}))[-1][-1]
    assert note.startswith("**Not added.**") and "not a text file" in note
    over = tmp_path / "over.txt"
    over.write_bytes(b"word " * (int(1.5 * MIB) // 5 + 1))
    note = list(handlers.upload(str(over), {}))[-1][-1]
    assert note.startswith("**Not added.**") and re.search(r"1\.5 MiB; the limit is 1\.5 MiB", note)
    with pytest.raises(Exception, match="over the limit of 1.5 MiB"):
        load_book(over, max_bytes=settings.max_file_bytes)


def test_uploads_get_an_id_of_their_own(handlers, companion, tmp_path):
    """A second book of the same title, and titles without Latin letters, are added under unique ids, shown."""
    said: list[str] = []
    books = {
        "first.txt": "The Lighthouse\n\nCHAPTER I\n\nMara climbed the tower and lit the lamp at dusk.\n",
        "second.txt": "The Lighthouse\n\nCHAPTER I\n\nOrin sold the lighthouse to a man from the city.\n",
        "ru.txt": "Маяк\n\nГлава 1\n\nСмотритель поднялся на башню и зажёг лампу в сумерках.\n",
        "zh.txt": "灯塔\n\n第一章\n\n守塔人在黄昏时爬上塔顶，点亮了那盏灯。\n",
    }
    ids = []
    for name, text in books.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        shown = list(handlers.upload(str(path), {}))[-1]
        ids.append(shown[1]["value"])
        said.append(shown[-1])
        assert f"is ready as {ids[-1]}" in said[-1]
    assert len(set(ids)) == 4 and ids[0] == "the-lighthouse" and ids[1].startswith("the-lighthouse-")
    stored = {b.book_id: b.title for b in companion.store.books()}
    assert [stored[i] for i in ids] == ["The Lighthouse", "The Lighthouse", "Маяк", "灯塔"]
    again = list(handlers.upload(str(tmp_path / "ru.txt"), {}))[-1]  # the same file again: found, not duplicated
    assert again[1]["value"] == ids[2] and "already in the library" in again[-1]


def test_api_session_names_are_refused_not_altered():
    """/ask's session names are used as given or refused with the reason; " alice" never becomes "alice"."""
    import gradio as gr

    import app

    assert app.api_session("alice") == "api-alice"
    assert app.api_session(None).startswith("api-") and app.api_session("") != app.api_session("")
    for name, why in [(" alice", "it contains ' '"), ("alice\n", "it contains '\\n'"), ("ali/ce", "it contains '/'"),
                      ("x" * 61, "it is longer than 60")]:
        with pytest.raises(gr.Error) as err:
            app.api_session(name)
        assert f"is not allowed: {why}" in err.value.message


def test_a_negative_chapter_in_the_chat_gets_the_cli_message(companion):
    """"I'm on chapter -3" is refused with --upto-chapter -3's words, and the spoiler limit stays as it was."""
    from retrieval.pipeline import check_chapter_limit
    from vignette.errors import VignetteError

    with pytest.raises(VignetteError) as cli:
        check_chapter_limit(-3, companion.book("sample"))
    companion.reply("negative", "sample", "I've read up to chapter 2")
    turn = companion.reply("negative", "sample", "I'm on chapter -3")
    assert cli.value.message in turn.reply
    assert turn.intent == "spoiler" and turn.upto_chapter == 2
    minus = companion.reply("negative", "sample", "I'm on chapter \u22123")  # a typographic minus sign
    assert re.search(r"must be 1 or more, not -3", minus.reply)
