"""The app over HTTP, as an API client sees it: /ask and /illustrate through gradio_client, ten
conversations at once kept apart, files served only to the session that made them, and uploads refused
with a clear message when they are bad. The app runs in this process on 127.0.0.1 with the real Companion
(the sample novel ingested, tiny-random image models).
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.sample_library import copy_sample_to

ROOT = Path(__file__).resolve().parents[1]
FACTS = yaml.safe_load((ROOT / "data" / "sample-novel.facts.yaml").read_text(encoding="utf-8"))


def fact(question_start: str) -> dict:
    return next(f for f in FACTS if f["question"].startswith(question_start))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(client, app handlers, companion, url): the real app, launched in this process."""
    import app
    from bot.companion import Companion
    from gradio_client import Client
    from vignette.settings import Settings

    data = copy_sample_to(tmp_path_factory.mktemp("app") / "data")
    settings = Settings.from_env(env={}, data_dir=data, image_models="tiny-random")
    companion = Companion(settings)
    demo = app.build_demo(companion)
    app.launch(demo, settings, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    url = demo.local_url
    client = Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))
    yield client, demo.vignette, companion, url
    client.close()
    demo.close()
    companion.close()


def test_the_api_names_ask_and_illustrate_with_defaults(served):
    client, *_ = served
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/ask", "/illustrate"} <= set(api)
    ask = {p["parameter_name"]: p for p in api["/ask"]["parameters"]}
    assert list(ask) == ["message", "book_id", "session"]
    assert ask["book_id"]["parameter_default"] == "sample" and ask["session"]["parameter_has_default"]
    illustrate = [p["parameter_name"] for p in api["/illustrate"]["parameters"]]
    assert illustrate == ["scene", "book_id", "session", "seed", "preset", "size"]
    # the UI's own events are not part of the API
    assert not any(name.startswith(("/respond", "/take_message", "/upload", "/load")) for name in api)


def test_ask_answers_with_the_quote_and_its_chapter(served):
    client, *_ = served
    f = fact("How long did the fishermen of Saltmarrow save")
    reply, details = client.predict(f["question"], api_name="/ask")
    assert any(word in reply.lower() for word in f["answer_contains"]), reply
    assert f"Chapter {f['chapter']}" in reply
    assert details["evidence"][0]["chapter"] == f["chapter"]
    assert f["quote"].lower()[:40] in " ".join(details["evidence"][0]["quote"].split()).lower()
    assert details["abstained"] is False and details["session"].startswith("api-")


def test_ask_refuses_an_unknown_book_and_a_bad_session_name_clearly(served):
    from gradio_client.exceptions import AppError

    client, *_ = served
    with pytest.raises(AppError, match="sample"):  # the message lists the books there are
        client.predict("Who found the letter?", "no-such-book", api_name="/ask")
    with pytest.raises(AppError, match="session name"):
        client.predict("Who found the letter?", "sample", "../../etc", api_name="/ask")


def test_a_named_api_session_remembers_its_conversation(served):
    client, _, companion, _ = served
    first = "What did Captain Dunmore give Wren?"
    client.predict(first, "sample", "keeper", api_name="/ask")
    _, details = client.predict("What else did he say to her?", "sample", "keeper", api_name="/ask")
    assert details["rewritten"] and "Dunmore" in details["question"]
    memory = [r["user"] for r in companion.history("api-keeper", "sample")]
    assert memory == [first, "What else did he say to her?"]
    assert companion.history("api-someone-else", "sample") == []


def test_illustrate_returns_the_png_with_its_prompt(served):
    from PIL import Image

    client, _, _, _ = served
    scene = "Wren in the lantern room at night"
    image, prompt = client.predict(scene, "sample", "painter", 7, "fast", "64x64", api_name="/illustrate")
    path = Path(image)
    assert path.is_file() and path.suffix == ".png"
    with Image.open(path) as im:
        assert im.size == (64, 64)
        meta = dict(im.text)
    assert meta["prompt"] == prompt and meta["seed"] == "7"
    assert "Wren" in prompt
    again, _ = client.predict(scene, "sample", "painter", 7, "fast", "64x64", api_name="/illustrate")
    other, _ = client.predict(scene, "sample", "painter", 8, "fast", "64x64", api_name="/illustrate")
    pixels = [Image.open(p).convert("RGB").tobytes() for p in (image, again, other)]
    assert pixels[0] == pixels[1] and pixels[0] != pixels[2]


def test_illustrate_draws_the_sessions_last_answer(served):
    from gradio_client.exceptions import AppError

    client, app, companion, _ = served
    client.predict("Who found the letter in the lantern room?", "sample", "reader-7", api_name="/ask")
    client.predict("How long did the fishermen of Saltmarrow save to buy a new bell?", "sample", "reader-8",
                   api_name="/ask")
    prompts = {}
    for session in ("reader-7", "reader-8"):
        _, prompts[session] = client.predict("", "sample", session, 3, "fast", "64x64",
                                             api_name="/illustrate")
        last = app.last_answer(f"api-{session}", "sample")
        assert prompts[session] == companion.illustrator.scene_prompt(last, "sample").text
    assert prompts["reader-7"] != prompts["reader-8"]
    with pytest.raises(AppError, match="nothing to draw yet"):
        client.predict("", "sample", "newcomer", 3, "fast", "64x64", api_name="/illustrate")
    with pytest.raises(AppError, match="multiple of 8"):
        client.predict("Wren on the cliff", "sample", "reader-7", 3, "fast", "65x64", api_name="/illustrate")


def test_ten_conversations_at_once_are_answered_and_kept_apart(served):
    """Ten API sessions ask at the same moment, then follow up at the same moment. Each gets exactly what it
    gets when it talks alone, and each memory holds its own turns only."""
    client, _, companion, _ = served
    chains = [(FACTS[f["followup_of"]]["question"], f["followup"]) for f in FACTS if f.get("followup")]
    singles = [f["question"] for f in FACTS if f.get("kind") == "fact" and not f.get("followup_of")
               and f["question"] not in {q for q, _ in chains}]
    talks = (chains + [(q, None) for q in singles])[:10]
    assert len(talks) == 10 and len({q for q, _ in talks}) == 10

    def at_once(calls):
        jobs = [client.submit(text, "sample", session, api_name="/ask") for session, text in calls]
        return [job.result(timeout=600) for job in jobs]

    first = at_once([(f"crowd-{i}", q) for i, (q, _) in enumerate(talks)])
    follow_ups = [(i, f) for i, (_, f) in enumerate(talks) if f]
    second = at_once([(f"crowd-{i}", f) for i, f in follow_ups])

    # the same turns, one conversation at a time, in the Companion directly
    for i, (question, follow_up) in enumerate(talks):
        alone = companion.reply(f"alone-{i}", "sample", question)
        reply, details = first[i]
        assert reply == alone.reply and details["session"] == f"api-crowd-{i}"
        assert details["evidence"], f"no passage for {question!r}"
        if follow_up:
            alone2 = companion.reply(f"alone-{i}", "sample", follow_up)
            reply2, details2 = second[[k for k, _ in follow_ups].index(i)]
            assert details2["question"] == alone2.question and reply2 == alone2.reply
        memory = [r["user"] for r in companion.history(f"api-crowd-{i}", "sample")]
        assert memory == [question] + ([follow_up] if follow_up else [])


def test_files_are_served_only_through_event_outputs(served, tmp_path):
    """The data dir (books, memory, other sessions' pictures) is not reachable by URL."""
    client, app, companion, url = served
    image, _ = client.predict("the lighthouse in the storm", "sample", "private", 1, "fast", "64x64",
                              api_name="/illustrate")
    own = sorted(app.session_folder("api-private", "sample").glob("*.png"))
    assert own, "the picture is kept in the session's own folder"
    book_file = Path(companion.settings.books_dir) / "sample" / "book.json"
    for secret in (own[0], companion.settings.memory_path, book_file):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}gradio_api/file={secret.resolve()}", timeout=30)
        assert refused.value.code == 403


def test_bad_uploads_are_refused_and_the_library_is_untouched(served, tmp_path):
    import gradio as gr

    _, app, companion, _ = served
    before = [b.book_id for b in companion.store.books()]
    stored = {"session": "web-" + "0" * 32, "book": "sample"}
    junk = tmp_path / "junk.txt"
    junk.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(gr.Error) as bad:
        app.upload(str(junk), stored)
    assert "junk.txt" in str(bad.value) or "text" in str(bad.value).lower()
    pdf = tmp_path / "novel.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    with pytest.raises(gr.Error, match=r"\.txt, \.epub"):
        app.upload(str(pdf), stored)
    big = tmp_path / "huge.txt"
    big.write_text("CHAPTER I. Long\n\n" + "word " * 5000)
    limit = app.settings.max_file_mb
    app.settings.max_file_mb = 0.01
    try:
        with pytest.raises(gr.Error, match="limit is 0.01 MiB"):
            app.upload(str(big), stored)
    finally:
        app.settings.max_file_mb = limit
    assert [b.book_id for b in companion.store.books()] == before
    assert companion.reply("after-upload", "sample", "Who found the letter?").answer is not None


def test_a_good_upload_becomes_a_book_to_talk_about(served, tmp_path):
    _, app, companion, _ = served
    book = tmp_path / "the-glass-orchard.md"
    book.write_text(
        "# The Glass Orchard\n\n## Chapter 1. The Gate\n\nMilo Brandt opened the iron gate of the orchard at "
        "dawn. The apple trees were made of green glass, and they rang like bells in the wind.\n\n"
        "## Chapter 2. The Gardener\n\nThe gardener was a tall woman called Ada Finch, who wore a yellow hat "
        "and carried silver shears. She told Milo that the orchard had been planted by her grandfather.\n",
        encoding="utf-8")
    stored = {"session": "web-" + "1" * 32, "book": "sample"}
    state, picker, chat, limit, *_ = app.upload(str(book), stored)
    book_id = state["book"]
    assert book_id in [b.book_id for b in companion.store.books()] and book_id != "sample"
    assert picker["value"] == book_id and chat == [] and limit["maximum"] == 2
    turn = companion.reply("web-" + "1" * 32, book_id, "Who planted the orchard?")
    assert "grandfather" in turn.reply and "Chapter 2" in turn.reply


def test_the_chat_streams_into_the_page_and_clear_forgets(served):
    """The page's chat handler: the reader's message shows at once, the reply streams in after a
    placeholder, and the chat's clear button forgets the conversation and its pictures."""
    _, app, companion, _ = served
    stored = {"session": "web-" + "2" * 32, "book": "sample"}
    f = fact("How long did the fishermen of Saltmarrow save")
    box, chat, pending = app.take_message(f["question"], [])
    assert box == "" and pending == f["question"] and chat == [{"role": "user", "content": f["question"]}]
    shown = [list(update[0]) for update in app.respond(pending, chat, stored, 8)]
    assert shown[0][-1] == {"role": "assistant", "content": "\u2026"}
    final = shown[-1][-1]["content"]
    assert "nine years" in final and "Chapter 1" in final
    assert [m["role"] for m in shown[-1]] == ["user", "assistant"]
    assert app.chat_history(stored["session"], "sample")[0]["content"] == f["question"]

    gallery, picture, prompt, sheet, scene = app.forget(stored)
    assert gallery == [] and picture is None and scene is None
    assert companion.history(stored["session"], "sample") == []
    assert app.chat_history(stored["session"], "sample") == []


def test_draw_it_in_the_chat_puts_the_picture_inline_and_in_the_gallery(served):
    _, app, companion, _ = served
    stored = {"session": "web-" + "3" * 32, "book": "sample"}
    question = fact("How long did the fishermen of Saltmarrow save")["question"]
    for _ in app.respond(question, [{"role": "user", "content": question}], stored, None):
        pass
    updates = [(list(chat), slider, gallery, panel) for chat, slider, gallery, panel
               in app.respond("draw it", [{"role": "user", "content": "draw it"}], stored, None)]
    chat, _, gallery, panel = updates[-1]
    # While it draws, the Illustration panel shows the sampler's previews and the chat says how far it is.
    previews = [u[3] for u in updates[:-1] if hasattr(u[3], "size")]
    assert previews and all(p.size == previews[0].size for p in previews)
    assert any("Drawing: step" in str(u[0][-1]["content"]) for u in updates[:-1])
    picture = chat[-1]["content"]
    assert panel == picture["path"]
    assert isinstance(picture, dict) and picture["path"].endswith(".png") and Path(picture["path"]).is_file()
    assert "Scene prompt" in chat[-2]["content"] and "Picture: /" not in chat[-2]["content"]
    assert len(gallery) == 1 and "Chapter 1" in gallery[0][1]
    assert app.chat_history(stored["session"], "sample")[-1]["content"]["path"].endswith(".png")


def test_stop_cancels_a_picture_asked_for_in_the_chat(served):
    """"draw it" in the chat registers the session's cancel event, so Stop ends that drawing too."""
    import threading
    import time

    _, app, _, _ = served
    stored = {"session": "web-" + "5" * 32, "book": "sample"}
    question = fact("How long did the fishermen of Saltmarrow save")["question"]
    for _ in app.respond(question, [{"role": "user", "content": question}], stored, None):
        pass
    outputs: list = []
    worker = threading.Thread(
        target=lambda: outputs.extend(app.respond("draw it", [{"role": "user", "content": "draw it"}], stored, None))
    )
    worker.start()
    deadline = time.monotonic() + 60
    while stored["session"] not in app._cancels and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored["session"] in app._cancels, "the chat drawing never registered its cancel event"
    app.stop(stored)
    worker.join(timeout=120)
    assert not worker.is_alive()
    chat = outputs[-1][0]
    assert not any(isinstance(m["content"], dict) for m in chat)  # no picture reached the chat
    assert not list(app.session_folder(stored["session"], "sample").glob("*.png"))
    assert stored["session"] not in app._cancels


def test_stop_cancels_a_drawing_within_a_step(served):
    """The Illustrate handler streams previews; Stop (the session's cancel event) ends it at the next step
    and no picture is kept."""
    import time

    _, app, _, _ = served
    stored = {"session": "web-" + "4" * 32, "book": "sample"}
    question = fact("How long did the fishermen of Saltmarrow save")["question"]
    for _ in app.respond(question, [{"role": "user", "content": question}], stored, None):
        pass
    drawing = app.illustrate_last(stored, None, "fast", "euler", 60, 0, True, 0, "256x256", [])
    shown = next(drawing)  # the scene prompt and its character sheet, before the first step
    assert shown[1] and shown[3] is not None
    preview = next(drawing)[0]
    assert preview is not None and preview.size == (256, 256)
    started = time.perf_counter()
    app.stop(stored)
    rest = list(drawing)
    assert time.perf_counter() - started < 10
    assert all(not isinstance(update[4], list) for update in rest)  # the chat never got a picture
    assert not list(app.session_folder(stored["session"], "sample").glob("*.png"))


def test_server_address_follows_the_environment():
    import app

    assert app.server_address({}) == ("127.0.0.1", None)
    assert app.server_address({"GRADIO_SERVER_NAME": "0.0.0.0", "PORT": "8080"}) == ("0.0.0.0", 8080)
    assert app.server_address({"GRADIO_SERVER_PORT": "7000", "PORT": "8080"}) == ("127.0.0.1", 7000)
    assert app.default_preset({"VIGNETTE_IMAGE_PRESET": "quality"}) == "quality"


def test_sessions_are_namespaced_and_checked():
    import gradio as gr

    import app

    assert app.web_session("web-" + "a" * 32) == "web-" + "a" * 32
    forged = app.web_session("api-someone-else")
    assert forged.startswith("web-") and forged != "api-someone-else"
    assert app.api_session("alice") == "api-alice"
    assert app.api_session(None) != app.api_session(None)
    with pytest.raises(gr.Error):
        app.api_session("a/b")
