"""The table of contents an EPUB carries: its EPUB 3 navigation document (``nav.xhtml``) or its EPUB 2 NCX
(``toc.ncx``).

Both list the book's headings as links into the spine documents (``chapter1.xhtml#ch01``), nested by
level. :func:`read_epub_toc` returns them flat, in reading order, as :class:`TocEntry` (label, document,
fragment, depth); the loader turns the links into offsets in the book's text, and the chapter finder
reads the labels as headings (see :func:`retrieval.chapters.find_chapters`). A navigation document that is
missing, unreadable or empty gives ``([], why)`` so the loader can fall back to the spine and say so.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

__all__ = ["TocEntry", "read_epub_toc"]

_NCX_NS = "{http://www.daisy.org/z3986/2005/ncx/}"
_XHTML_NS = "{http://www.w3.org/1999/xhtml}"
_EPUB_NS = "{http://www.idpf.org/2007/ops}"


@dataclass(frozen=True)
class TocEntry:
    label: str  # the entry's text, white space collapsed
    path: str  # the spine document it points into, as a path inside the zip
    fragment: str | None  # the element id inside it, or None for the document's start
    depth: int  # 1 for the top level


def read_epub_toc(
    read, opf, opf_path: str, ns: dict[str, str], parse=ElementTree.fromstring
) -> tuple[list[TocEntry], str, str | None]:
    """``(entries, source, problem)``: the entries of the EPUB 3 nav (``source="epub-nav"``) or, failing
    that, of the NCX (``"epub-ncx"``); ``problem`` says why a navigation document could not be used.

    ``read(path) -> bytes`` reads a file of the zip (within the archive's limits); ``opf`` is the parsed
    package document; ``parse(bytes)`` parses XML (pass a parser that refuses entities)."""
    base = posixpath.dirname(opf_path)
    manifest = {}
    for item in opf.findall(".//opf:manifest/opf:item", ns):
        if item.get("id") and item.get("href"):
            manifest[item.get("id")] = item
    problems = []

    # 1. EPUB 3: the manifest item with properties="nav".
    nav = next((i for i in manifest.values() if "nav" in (i.get("properties") or "").split()), None)
    if nav is not None:
        path = _join(base, nav.get("href"))
        try:
            entries = _parse_nav(parse(read(path)), path)
            if entries:
                return entries, "epub-nav", None
            problems.append("its navigation document lists no chapters")
        except Exception as exc:  # noqa: BLE001 - any damage to the nav means: fall back to the spine
            problems.append(f"its navigation document is unreadable ({type(exc).__name__})")

    # 2. EPUB 2: the NCX named by the spine's toc attribute, or any item of the NCX media type.
    spine = opf.find(".//opf:spine", ns)
    ncx = manifest.get(spine.get("toc")) if spine is not None and spine.get("toc") else None
    if ncx is None or not (ncx.get("href") or "").lower().endswith(".ncx"):
        ncx = next((i for i in manifest.values() if i.get("media-type") == "application/x-dtbncx+xml"), ncx)
    if ncx is not None and (ncx.get("href") or "").lower().endswith(".ncx"):
        path = _join(base, ncx.get("href"))
        try:
            entries = _parse_ncx(parse(read(path)), path)
            if entries:
                return entries, "epub-ncx", None
            problems.append("its NCX table of contents lists no chapters")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"its NCX table of contents is unreadable ({type(exc).__name__})")
    if not problems:
        problems.append("it has no navigation document")
    return [], "", "; ".join(problems)


def _join(base: str, href: str) -> str:
    return posixpath.normpath(posixpath.join(base, unquote(href)))


def _target(doc_path: str, href: str) -> tuple[str, str | None]:
    parts = urlsplit(href)
    if parts.scheme or parts.netloc:
        raise ValueError(f"external link {href!r}")
    path = _join(posixpath.dirname(doc_path), parts.path) if parts.path else doc_path
    return path, unquote(parts.fragment) or None


def _text(el) -> str:
    return " ".join("".join(el.itertext()).split())


def _parse_ncx(root, path: str) -> list[TocEntry]:
    nav_map = root.find(f"{_NCX_NS}navMap")
    if nav_map is None:
        nav_map = root.find("navMap")  # an NCX without its namespace
    if nav_map is None:
        return []
    ns = _NCX_NS if nav_map.tag.startswith("{") else ""
    out: list[TocEntry] = []

    def walk(node, depth: int) -> None:
        for point in node.findall(f"{ns}navPoint"):
            label_el = point.find(f"{ns}navLabel/{ns}text")
            content = point.find(f"{ns}content")
            if label_el is not None and content is not None and content.get("src"):
                doc, fragment = _target(path, content.get("src"))
                out.append(TocEntry(_text(label_el), doc, fragment, depth))
            walk(point, depth + 1)

    walk(nav_map, 1)
    return out


def _parse_nav(root, path: str) -> list[TocEntry]:
    navs = [n for n in root.iter(f"{_XHTML_NS}nav")] or [n for n in root.iter("nav")]
    toc = next((n for n in navs if (n.get(f"{_EPUB_NS}type") or n.get("type") or "") == "toc"), None)
    if toc is None:
        toc = navs[0] if navs else None
    if toc is None:
        return []
    ns = _XHTML_NS if toc.tag.startswith("{") else ""
    out: list[TocEntry] = []

    def walk(ol, depth: int) -> None:
        for li in ol.findall(f"{ns}li"):
            a = li.find(f"{ns}a")
            if a is not None and a.get("href"):
                doc, fragment = _target(path, a.get("href"))
                out.append(TocEntry(_text(a), doc, fragment, depth))
            for sub in li.findall(f"{ns}ol"):
                walk(sub, depth + 1)

    for ol in toc.findall(f"{ns}ol"):
        walk(ol, 1)
    return out
