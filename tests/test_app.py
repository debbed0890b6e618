"""The app over HTTP, as an API client sees it: /ask and /illustrate through gradio_client, ten
conversations at once kept apart, files served only to the session that made them, and uploads refused
with a clear message when they are bad. The app runs in this process on 127.0.0.1 with the real Companion
(the sample novel ingested, tiny-random image models).
"""

from __future__ import annotations

import re
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
    quoted = 0
    for i, (question, follow_up) in enumerate(talks):
        alone = companion.reply(f"alone-{i}", "sample", question)
        reply, details = first[i]
        assert reply == alone.reply and details["session"] == f"api-crowd-{i}"
        quoted += bool(details["evidence"])
        if follow_up:
            alone2 = companion.reply(f"alone-{i}", "sample", follow_up)
            reply2, details2 = second[[k for k, _ in follow_ups].index(i)]
            assert details2["question"] == alone2.question and reply2 == alone2.reply
        memory = [r["user"] for r in companion.history(f"api-crowd-{i}", "sample")]
        assert memory == [question] + ([follow_up] if follow_up else [])
    assert quoted >= 6, f"only {quoted} of 10 replies quote a passage: the comparison would prove little"


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


def _last(updates):
    """The last update a streaming handler yields."""
    *_, last = updates
    return last


def test_bad_uploads_are_refused_the_box_reset_and_the_library_untouched(served, tmp_path):
    _, app, companion, _ = served
    before = [b.book_id for b in companion.store.books()]
    stored = {"session": "web-" + "0" * 32, "book": "sample"}

    def refused(path) -> str:
        *view, box, note = _last(app.upload(str(path), stored))
        assert box == {"__type__": "update", "value": None}  # the box is emptied, ready for another file
        assert all(v == {"__type__": "update"} for v in view)  # nothing else on the page changes
        assert note.startswith("**Not added.**")
        return note

    junk = tmp_path / "junk.txt"
    junk.write_bytes(bytes(range(256)) * 64)
    note = refused(junk)
    assert "junk.txt" in note or "text" in note.lower()
    pdf = tmp_path / "novel.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    assert ".txt, .epub" in refused(pdf)
    big = tmp_path / "huge.txt"
    big.write_text("CHAPTER I. Long\n\n" + "word " * 5000)
    limit = app.settings.max_file_mb
    app.settings.max_file_mb = 0.01
    try:
        assert "is 0.0239 MiB; the limit is 0.01 MiB" in refused(big)  # its size, not "0.0"
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
    updates = list(app.upload(str(book), stored))
    notes = [u[-1] for u in updates[:-1]]
    assert any(n.startswith(("Reading", "Splitting", "Indexing")) for n in notes)  # the stage, by name
    state, picker, position, chat, *_, box, note = updates[-1]
    book_id = state["book"]
    assert book_id in [b.book_id for b in companion.store.books()] and book_id != "sample"
    assert picker["value"] == book_id and box["value"] is None
    assert [label for label, _ in position["choices"]] == ["Chapter 1 \u2014 The Gate",
                                                           "Chapter 2 \u2014 The Gardener (the whole book)"]
    # one "ready" message, in the chat, correctly counted, with the questions to start with
    assert len(chat) == 1 and chat[0]["role"] == "assistant"
    ready = chat[0]["content"]
    assert "is ready as " in ready and ": 2 chapters, 2 passages" in ready and ready.count("ready") == 1 and note in ready
    suggested = [u["value"] for u in updates[-1][12:15] if u.get("visible")]
    assert suggested and all(q in ready for q in suggested)
    turn = companion.reply("web-" + "1" * 32, book_id, "What did the gardener carry?")
    assert "silver shears" in turn.reply and "Chapter 2" in turn.reply


def test_a_book_without_headings_has_one_fixed_reading_position(served, tmp_path):
    """A short text with no chapter headings: no slider error, a picker that says what it covers, and
    questions go to that book."""
    _, app, companion, _ = served
    text = tmp_path / "a-short-tale.txt"
    text.write_text("A Short Tale\n\nThe miller's daughter, Elsa Brandvold, kept a grey goose called Tansy. "
                    "Every morning Elsa walked Tansy to the mill pond. One day the goose found a silver key "
                    "in the reeds, and Elsa used it to open her grandmother's old sea chest.\n", encoding="utf-8")
    stored = {"session": "web-" + "6" * 32, "book": "sample"}
    state, picker, position, chat, *_ = _last(app.upload(str(text), stored))[:-2]
    assert len(position["choices"]) == 1 and position["interactive"] is False
    assert "whole" in position["info"]
    stored = state
    history = [{"role": "user", "content": "What did the goose find?"}]
    final = _last(app.respond("What did the goose find?", history, stored, position["value"]))[0]
    assert "key" in final[-1]["content"] and "Saltmarrow" not in final[-1]["content"]
    assert "vignette-chip" not in final[-1]["content"]  # no limit, no chip


def test_the_reading_position_is_saved_when_it_changes_and_shows_on_answers(served):
    _, app, companion, _ = served
    stored = {"session": "web-" + "7" * 32, "book": "sample"}
    app.set_position(3, stored)
    assert companion.spoiler_limit(stored["session"], "sample") == 3
    view = app.load(stored)  # a reload
    position = view[2]
    assert position["value"] == 3 and position["choices"][2][0] == "Chapter 3 \u2014 The Letter in the Lantern Room"
    question = "Who found the letter?"
    final = _last(app.respond(question, [{"role": "user", "content": question}], stored, position["value"]))[0]
    assert final[-1]["content"].startswith('<span class="vignette-chip">up to Ch. 3</span>')
    assert app.chat_history(stored["session"], "sample")[1]["content"].startswith('<span class="vignette-chip">')
    app.set_position(8, stored)  # the last chapter: the whole book, no limit
    assert companion.spoiler_limit(stored["session"], "sample") is None
    assert app.load(stored)[2]["value"] == 8


def test_the_status_line_is_short_and_the_set_up_advice_is_in_about(served):
    _, app, _, _ = served
    line = app.status()
    assert line.startswith("Offline \u00b7 answers quoted from the book") and "pictures: test models" in line
    assert "VIGNETTE" not in line and len(line) < 120
    about = app.about()
    assert "models/reader" in about and "all-MiniLM-L6-v2" in about  # the details, once, here
    question = "Who found the letter?"
    stored = {"session": "web-" + "8" * 32, "book": "sample"}
    reply = _last(app.respond(question, [{"role": "user", "content": question}], stored, None))[0][-1]["content"]
    assert "VIGNETTE_" not in reply and "`python" not in reply


def test_upload_progress_moves_between_reports_and_estimates_the_time_left(monkeypatch):
    import app as app_module

    clock = [100.0]
    monkeypatch.setattr(app_module.time, "perf_counter", lambda: clock[0])
    tracker = app_module.IngestProgress("novel.txt")
    assert tracker.line() == "Reading \u201cnovel.txt\u201d\u2026"
    tracker.update(0, 1, "splitting")
    assert "Splitting" in tracker.line()
    tracker.update(0, 600, "embedding")
    clock[0] += 1.0
    first = tracker.line()  # no batch done yet: the prior rate moves it
    assert first.startswith("Indexing passages: 30 of 600 (5%)") and "s left" in first
    clock[0] += 1.0
    tracker.update(64, 600, "embedding")  # 64 passages in 2 s: 32 a second
    clock[0] += 0.5
    assert tracker.line() == "Indexing passages: 80 of 600 (13%) \u00b7 about 16 s left"
    clock[0] += 30
    assert tracker.line().startswith("Indexing passages: 599 of 600")  # never claims done before it is
def test_the_chat_streams_into_the_page_and_clear_forgets(served):
    """The page's chat handler: the reader's message shows at once, the reply streams in after a
    placeholder, and the chat's clear button forgets the conversation and its pictures."""
    _, app, companion, _ = served
    stored = {"session": "web-" + "2" * 32, "book": "sample"}
    f = fact("How long did the fishermen of Saltmarrow save")
    box, chat, pending = app.take_message(f["question"], [])
    assert box == "" and pending == f["question"] and chat == [{"role": "user", "content": f["question"]}]
    updates, shown = [], []
    for update in app.respond(pending, chat, stored, 8):
        updates.append(update)
        shown.append(list(update[0]))  # the chat as it was at that moment
    assert shown[0][-1] == {"role": "assistant", "content": "\u2026"}
    final = shown[-1][-1]["content"]
    assert "nine years" in final and "Chapter 1" in final
    assert [m["role"] for m in shown[-1]] == ["user", "assistant"]
    assert app.chat_history(stored["session"], "sample")[0]["content"] == f["question"]
    assert updates[-1][8]["interactive"] is True  # an answer with a passage: Illustrate can act now
    assert updates[-1][9]["interactive"] is False  # nothing is drawing: Stop cannot

    gallery, picture, prompt, sheet, scene, illustrate, regenerate = app.forget(stored)
    assert gallery["value"] == [] and gallery["visible"] is False and scene is None
    assert illustrate["interactive"] is False and regenerate["interactive"] is False
    assert companion.history(stored["session"], "sample") == []
    assert app.chat_history(stored["session"], "sample") == []


def test_draw_it_in_the_chat_puts_the_picture_inline_and_in_the_gallery(served):
    _, app, companion, _ = served
    stored = {"session": "web-" + "3" * 32, "book": "sample"}
    question = fact("How long did the fishermen of Saltmarrow save")["question"]
    for _ in app.respond(question, [{"role": "user", "content": question}], stored, None):
        pass
    updates, said = [], []
    for update in app.respond("draw it", [{"role": "user", "content": "draw it"}], stored, None):
        updates.append(update)
        said.append(str(update[0][-1]["content"]))  # the chat's last message at that moment
    chat, _, gallery, preview, progress, prompt, sheet, scene, illustrate, stop, regenerate, _ = updates[-1]
    # While it draws, the Illustration tab opens, its preview shows the sampler's steps on their own line,
    # Stop is the button that acts, and the chat says how far it is.
    drawing = [u for u in updates[:-1] if str(u[4]).startswith("Drawing: step")]
    previews = [u[3]["value"] for u in drawing if isinstance(u[3], dict) and u[3].get("value") is not None]
    assert previews and all(p.size == previews[0].size for p in previews)
    assert drawing[0][9]["interactive"] is True and drawing[0][11].selected == "illustration"
    assert any("Drawing: step" in text for text in said[:-1])
    # Then the picture shows once in the chat and once in the panel's gallery; the preview is emptied.
    picture = chat[-1]["content"]
    assert isinstance(picture, dict) and picture["path"].endswith(".png") and Path(picture["path"]).is_file()
    assert preview == {"__type__": "update", "value": None, "visible": False} and progress == ""
    assert "Scene prompt" in chat[-2]["content"] and "Picture: /" not in chat[-2]["content"]
    assert gallery["visible"] and len(gallery["value"]) == 1
    label = gallery["value"][0][1]
    assert "Chapter 1" in label and "prompt v1" in label and "seed " in label
    assert stop["interactive"] is False and illustrate["interactive"] is True
    assert app.chat_history(stored["session"], "sample")[-1]["content"]["path"].endswith(".png")
    # Its prompt and sheet fill the panel's boxes, so Regenerate works on a picture drawn from the chat.
    assert prompt == companion.history(stored["session"], "sample")[-1]["scene_prompt"] and scene.text == prompt
    assert regenerate["interactive"] is True
    edited = prompt + ", at dawn"
    redrawn = list(app.regenerate(edited, sheet, scene, stored, "fast", "euler", 2, 5, False, 0, "64x64", chat))
    final = redrawn[-1]
    assert final[1].startswith("Done:") and final[2] == edited and final[7] == 5
    labels = [label for _, label in final[6]["value"]]
    assert len(labels) == 2 and "prompt v2 \u00b7 seed 5" in labels[1]  # told apart from the first
    assert sum(1 for m in final[5] if isinstance(m["content"], dict)) == 2  # one more picture in the chat


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
    assert shown[2] and shown[4] is not None
    assert shown[8]["interactive"] is False and shown[9]["interactive"] is True  # only Stop can act now
    update = next(drawing)
    while update[0].get("value") is None:  # steps without a preview
        update = next(drawing)
    assert update[0]["value"].size == (256, 256) and update[1].startswith("Drawing: step")
    started = time.perf_counter()
    app.stop(stored)
    rest = list(drawing)
    assert time.perf_counter() - started < 10
    assert all(not isinstance(update[5], list) for update in rest)  # the chat never got a picture
    stopped = rest[-1]
    assert re.fullmatch(r"Stopped at step \d+ of 60\.", stopped[1])  # said where it stopped
    assert stopped[0] == {"__type__": "update", "value": None, "visible": False}  # the stale preview goes
    assert stopped[8]["interactive"] is True and stopped[9]["interactive"] is False
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
