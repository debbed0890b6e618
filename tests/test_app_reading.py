"""The /recap and /people endpoints through gradio_client, and the Reader's handlers, on the real app
(launched in this process over a copy of the ingested sample)."""

from __future__ import annotations

import socket

import pytest

from tests.sample_library import copy_sample_to


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import app
    from bot.companion import Companion
    from gradio_client import Client
    from vignette.settings import Settings

    data = copy_sample_to(tmp_path_factory.mktemp("app-reading") / "data")
    settings = Settings.from_env(env={}, data_dir=data, image_models="tiny-random")
    companion = Companion(settings)
    demo = app.build_demo(companion)
    app.launch(demo, settings, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    client = Client(demo.local_url, verbose=False)
    yield client, demo.vignette, companion
    client.close()
    demo.close()
    companion.close()


def test_recap_and_people_endpoints_stop_at_the_limit(served):
    client, *_ = served
    recap = client.predict("sample", 2, api_name="/recap")
    assert recap["upto_chapter"] == 2 and [c["chapter"] for c in recap["chapters"]] == [1, 2]
    assert all(s["chapter"] <= 2 for c in recap["chapters"] for s in c["sentences"])
    people = client.predict("sample", 1, api_name="/people")
    names = [p["name"] for p in people["people"]]
    assert names and not any("Dunmore" in n or n == "Pilot" for n in names)
    whole = client.predict("sample", None, api_name="/people")
    assert any("Dunmore" in p["name"] for p in whole["people"])
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no chapter 99"):
        client.predict("sample", 99, api_name="/recap")


def test_the_reader_opens_a_quote_and_refuses_one_past_the_limit(served):
    import gradio as gr

    from app import ReadingPanels, passage_html

    _, handlers, companion = served
    panels = ReadingPanels(handlers)
    book = companion.book("sample")
    stored = {"session": "web-" + "0" * 32, "book": "sample"}
    quote = "Toby was sixteen, and he was the tallest boy in Saltmarrow"
    start = book.text.index(quote)
    html, where, previous, following, _ = panels._open("sample", start, start + len(quote), 2)
    assert f"<mark>{quote}" in html and "The Seven Bells of Saltmarrow" in html
    assert where["next"] is not None and previous["interactive"] and following["interactive"]
    late = book.text.index("Captain Dunmore")
    with pytest.raises(gr.Error, match="spoiler limit"):
        panels._open("sample", late, late + 15, 2)
    with pytest.raises(gr.Error, match="nothing further"):
        panels.turn_page({"previous": None, "next": None}, "next", stored, 2)
    # book text is escaped: markup in a book is shown as text
    from bot.passage_view import Paragraph, PassageView

    view = PassageView("x", 1, "<b>One</b>", [Paragraph("<script>alert(1)</script> & more", 0, 10, [(0, 8)])],
                       (0, 8), None, None, None)
    shown = passage_html(view)
    assert "<script>" not in shown and "&lt;script&gt;" in shown and "<mark>&lt;script&gt;</mark>" in shown
