"""Plain-text books in the encodings of their languages are read as their text, not as mojibake: detection
(charset-normalizer) before the cp1252 / latin-1 fallback, UTF-16 without a byte-order mark, and a clear
refusal when no encoding gives plausible text."""

from __future__ import annotations

import random

import pytest

from retrieval.loading import load_book
from vignette.errors import VignetteError

RUSSIAN = """Глава первая. Мельница

На краю деревни стояла старая мельница, и мельник по имени Степан каждое утро открывал её тяжёлые двери ещё до рассвета. Зимой колесо замерзало, и тогда он рубил лёд топором, ругаясь на ветер и на собственную упрямую судьбу.

Его дочь Варвара носила муку в город на продажу и возвращалась поздно вечером с новостями о ярмарке, о ценах на хлеб и о незнакомце в синем плаще, который расспрашивал всех про мельницу.

Глава вторая. Незнакомец

Незнакомец пришёл в среду. Он долго молчал, грел руки у печи, а потом положил на стол серебряную монету и сказал, что ищет человека, который видел пожар на мосту двадцать лет назад.
"""

CHINESE = """第一章 磨坊

村子的尽头有一座老磨坊，磨坊主每天天不亮就推开那扇沉重的木门。冬天水轮会结冰，他只好拿斧头去砍冰，一边骂着北风，一边骂着自己倔强的命运。

他的女儿每天把面粉背到城里去卖，傍晚才回来，带回集市上的消息、面包的价钱，还有一个穿蓝色斗篷的陌生人，那人到处打听磨坊的事情。

第二章 陌生人

陌生人是星期三来的。他在炉子边烤了很久的手，一句话也不说，然后把一枚银币放在桌上，说他在找一个二十年前亲眼看见桥上大火的人。
"""

KOREAN = """제1장 방앗간

마을 끝에는 오래된 방앗간이 있었고, 방앗간 주인은 매일 아침 해가 뜨기도 전에 무거운 나무 문을 열었다. 겨울이면 물레방아가 얼어붙어서 그는 도끼로 얼음을 깨며 바람과 자신의 고집스러운 운명을 원망했다.

그의 딸은 밀가루를 지고 도시에 팔러 갔다가 저녁 늦게 돌아와 장터 소식과 빵 값, 그리고 방앗간에 대해 묻고 다니는 파란 망토를 입은 낯선 사람의 이야기를 전했다.

제2장 낯선 사람

낯선 사람은 수요일에 찾아왔다. 그는 난로 옆에서 오랫동안 손을 녹이며 아무 말도 하지 않다가, 탁자 위에 은화 한 닢을 올려놓고 이십 년 전 다리 위의 화재를 본 사람을 찾고 있다고 말했다.
"""

ENGLISH = """Chapter One. The Mill

At the end of the village stood an old mill, and the miller opened its heavy doors every morning before dawn. In winter the wheel froze, and he chopped at the ice with an axe, cursing the wind and his own stubborn luck.

His daughter carried the flour to town to sell and came home late with news of the fair, of the price of bread, and of a stranger in a blue cloak who asked everyone about the mill.
"""


@pytest.mark.parametrize("text, encoding", [
    (RUSSIAN, "cp1251"),
    (RUSSIAN, "koi8-r"),
    (CHINESE, "gbk"),
    (KOREAN, "euc-kr"),
    (RUSSIAN, "utf-16-le"),
    (ENGLISH, "utf-16-le"),
    (ENGLISH.replace("cloak", "cloak\u2014a caf\u00e9 na\u00eff\u2019s\u2014"), "cp1252"),
])
def test_a_book_in_its_own_encoding_reads_as_its_text(tmp_path, text, encoding):
    """cp1251, KOI8-R, GBK, EUC-KR, UTF-16-LE without a byte-order mark (and cp1252) decode to the text itself."""
    path = tmp_path / f"book-{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    assert not path.read_bytes().startswith((b"\xff\xfe", b"\xfe\xff"))
    book = load_book(path)
    assert book.text == text.strip()


def test_text_no_encoding_reads_plausibly_is_refused_with_the_reason(tmp_path):
    """Bytes that give garbled text in every encoding are refused, saying so, instead of stored as mojibake."""
    rng = random.Random(7)
    alphabet = list(range(0x80, 0x100)) + list(range(0x21, 0x7F))
    words = [bytes(rng.choice(alphabet) for _ in range(rng.randint(2, 8))) for _ in range(4000)]
    path = tmp_path / "scrambled.txt"
    path.write_bytes(b" ".join(words))
    with pytest.raises(VignetteError, match="encoding is not one Vignette recognises.*garbled") as err:
        load_book(path)
    assert "UTF-8" in str(err.value)


def test_binary_data_is_still_not_text(tmp_path):
    """Detecting UTF-16 without a byte-order mark does not let binary data with NUL bytes through."""
    path = tmp_path / "scan.txt"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(VignetteError, match="not a text file"):
        load_book(path)
