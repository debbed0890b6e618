"""An id for a book added without one (the app's upload box), unique in the library.

The id is the slug of the title ("The Keeper's Promise" -> ``the-keepers-promise``). Two cases need more:
a title with no Latin letters (every Russian, Chinese or Korean title slugs to ``book`` or to a bare
number), and a title already used by another text in the library. Both get the first 8 hex digits of
the text's SHA-256 appended (``book-3fa2c1d9``, ``the-lighthouse-9b0e47aa``): stable, so adding the same
file again finds it, and different for a different text.
"""

from __future__ import annotations

import re

from retrieval.text import slugify
from vignette.documents import Book

__all__ = ["unique_book_id"]

_HASH_DIGITS = 8


def unique_book_id(book: Book, store) -> str:
    """An id for ``book`` that no other text in ``store`` (a :class:`~retrieval.store.BookStore`) holds:
    its title's slug when that is free (or holds this same text), else the slug with a hash of the text."""
    from retrieval.store import text_hash

    digest = text_hash(book.text)
    base = slugify(book.title)
    if not re.search(r"[a-z]", base) or base == "book":
        base = "book" if base == "book" else f"book-{base}"  # no Latin letters: the hash names it
        candidates = [f"{base}-{digest[:n]}" for n in (_HASH_DIGITS, 16, 32)]
    else:
        candidates = [base] + [f"{base}-{digest[:n]}" for n in (_HASH_DIGITS, 16, 32)]
    for candidate in candidates:
        if not store.has_book(candidate) or text_hash(store.get_book(candidate).text) == digest:
            return candidate
    return candidates[-1]  # a full SHA-256 collision: the store refuses it with its own message
