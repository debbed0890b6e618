"""EPUBs built to exhaust memory are refused within limits (retrieval/archive.py, used by the loader):
a chapter that inflates to 900 MiB, many chapters that together pass the file limit, too many members,
and XML that declares entities. Peak memory is measured in a separate process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from retrieval.loading import load_book
from vignette.errors import VignetteError

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024

CONTAINER = ('<?xml version="1.0"?><container version="1.0" '
             'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile '
             'full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>')


def opf(chapters: int, title: str = "The Deep Well", doctype: str = "") -> str:
    items = "".join(f'<item id="c{i}" href="c{i}.xhtml" media-type="application/xhtml+xml"/>'
                    for i in range(chapters))
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(chapters))
    return (f'<?xml version="1.0"?>{doctype}<package xmlns="http://www.idpf.org/2007/opf" version="2.0">'
            f'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title></metadata>'
            f'<manifest>{items}</manifest><spine>{spine}</spine></package>')


def chapter(n: int) -> str:
    return (f"<html><body><h1>Chapter {n + 1}</h1><p>The bucket went down into the deep well and came up "
            f"full of cold water for the {n + 1}th time.</p></body></html>")


def epub(path: Path, package: str, chapters: dict[str, bytes | str], extra: int = 0) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        zf.writestr("META-INF/container.xml", CONTAINER)
        zf.writestr("OEBPS/content.opf", package)
        for name, body in chapters.items():
            zf.writestr(f"OEBPS/{name}", body)
        for i in range(extra):
            zf.writestr(f"OEBPS/images/blank{i}.txt", "")
    return path


def test_a_plain_epub_still_loads(tmp_path):
    """The limits leave an ordinary EPUB alone."""
    book = load_book(epub(tmp_path / "well.epub", opf(3), {f"c{i}.xhtml": chapter(i) for i in range(3)}),
                     max_bytes=50 * MIB)
    assert book.title == "The Deep Well" and len(book.chapters) == 3
    assert "came up full of cold water for the 3th time" in book.text


@pytest.mark.slow
def test_a_zip_bomb_is_refused_under_300_mib(tmp_path):
    """A small EPUB whose chapter inflates to 900 MiB is refused, and the loader's peak memory stays under 300 MiB."""
    path = tmp_path / "bomb.epub"
    epub(path, opf(1), {})
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("OEBPS/c0.xhtml", "w", force_zip64=True) as fh:
            block = b"<p>" + b" " * MIB
            for _ in range(900):
                fh.write(block)
    assert path.stat().st_size < 5 * MIB
    script = textwrap.dedent(f"""
        import resource
        from retrieval.loading import load_book
        from vignette.errors import VignetteError
        try:
            load_book({str(path)!r}, max_bytes=50 * 1024 * 1024)
            print("LOADED")
        except VignetteError as err:
            print("REFUSED", err.message)
        # VmHWM: this process's own peak (ru_maxrss would carry the parent's over from before exec)
        try:
            status = open("/proc/self/status").read()
            print("PEAK_KB", next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM")))
        except OSError:
            print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = out.stdout.splitlines()
    assert any(line.startswith("REFUSED") and "bomb" in line for line in lines), out.stdout + out.stderr[-2000:]
    peak_mib = int(next(line.split()[1] for line in lines if line.startswith("PEAK_KB"))) / 1024
    print(f"\npeak memory while refusing a 900 MiB bomb: {peak_mib:.0f} MiB")
    assert peak_mib < 300


def test_chapters_that_together_pass_the_limit_are_refused(tmp_path):
    """Small members are counted together: the whole archive may not unpack to more than the file limit."""
    body = "<p>" + "The rope creaked. " * 55_000 + "</p>"  # ~1 MB each, compresses like text does
    path = epub(tmp_path / "long.epub", opf(8), {f"c{i}.xhtml": body for i in range(8)})
    assert path.stat().st_size < 5 * MIB
    with pytest.raises(VignetteError, match="over the limit of 5.0 MiB|more than the limit of 5.0 MiB"):
        load_book(path, max_bytes=5 * MIB)
    assert load_book(path, max_bytes=50 * MIB).text.count("The rope creaked.") == 8 * 55_000


def test_too_many_members_are_refused(tmp_path):
    """An archive of more than 10,000 files is refused before its directory is parsed into objects."""
    path = epub(tmp_path / "many.epub", opf(1), {"c0.xhtml": chapter(0)}, extra=10_001)
    with pytest.raises(VignetteError, match="10,00[0-9] files, over the limit of 10,000"):
        load_book(path, max_bytes=50 * MIB)


def test_xml_entities_are_not_expanded(tmp_path):
    """The package XML is parsed without entity expansion: a declared entity (or a billion laughs) is refused."""
    declared = '<!DOCTYPE package [<!ENTITY t "Secret Title">]>'
    path = epub(tmp_path / "entity.epub", opf(1, title="&t;", doctype=declared), {"c0.xhtml": chapter(0)})
    with pytest.raises(VignetteError, match="declares entities"):
        load_book(path, max_bytes=50 * MIB)

    laughs = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    bomb = f'<!DOCTYPE package [<!ENTITY l0 "lol">{laughs}]>'
    path = epub(tmp_path / "laughs.epub", opf(1, title="&l9;", doctype=bomb), {"c0.xhtml": chapter(0)})
    with pytest.raises(VignetteError, match="declares entities"):
        load_book(path, max_bytes=50 * MIB)
