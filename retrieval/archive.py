"""Reading an untrusted zip archive (an EPUB) with bounded memory.

A 2 MiB EPUB can hold a chapter that inflates to gigabytes, a central directory of a million entries, or an
XML package whose entities expand a few bytes into gigabytes ("billion laughs"). :class:`SafeZip` reads
such a file within limits and refuses it, with a :class:`VignetteError` saying which limit, before the
memory is spent:

- the number of members is read from the end-of-central-directory record before the directory is parsed;
- every member is inflated in small chunks, counted against its declared size and against one budget for
  the whole archive (the file limit, ``VIGNETTE_MAX_FILE_MB``): reading stops at the first byte over it;
- a member whose declared size is over ``max_ratio`` times its compressed size is refused unread (a text
  compresses 3-10 times; a bomb a thousand);
- XML is parsed by defusedxml: a document that declares entities or refers to external ones is refused.
"""

from __future__ import annotations

import io
import struct
import zipfile
from typing import BinaryIO

from vignette.errors import VignetteError

__all__ = ["SafeZip", "parse_xml", "MAX_MEMBERS", "MAX_RATIO"]

MAX_MEMBERS = 10_000  # an EPUB of a long novel holds a few hundred files
MAX_RATIO = 100  # inflated / compressed size of one member; text and markup stay far below it
_RATIO_EXEMPT = 1024 * 1024  # members this small may compress as well as they like (blank padding, CSS)
_CHUNK = 64 * 1024
_EOCD = b"PK\x05\x06"


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 100 * 1024 else f"{n:,} bytes"


class SafeZip:
    """A zip archive read within limits. ``max_total`` caps the bytes inflated from it in all (None: no
    cap, only the ratio and member checks). Use as a context manager."""

    def __init__(self, data: bytes, name: str, max_total: int | None, max_members: int = MAX_MEMBERS,
                 max_ratio: float = MAX_RATIO):
        self.name = name
        self.max_total = max_total
        self.max_ratio = max_ratio
        self.read_total = 0  # bytes inflated so far
        # 1. Count the members from the end record, before zipfile builds an object for each of them.
        count = _declared_members(data)
        if count is not None and count > max_members:
            raise self._refuse(f"it holds {count:,} files, over the limit of {max_members:,}")
        try:
            self._zf = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, struct.error) as exc:
            raise VignetteError(
                f"Cannot read {name!r}: it is not a readable EPUB (it is not a zip archive: {exc}).",
                hint="The file may be damaged or incomplete; try downloading it again, or use a plain-text copy.",
            ) from None
        infos = self._zf.infolist()
        if len(infos) > max_members:
            self._zf.close()
            raise self._refuse(f"it holds {len(infos):,} files, over the limit of {max_members:,}")
        self._infos = {info.filename: info for info in infos}

    # --- reading ---------------------------------------------------------------------------------------
    def namelist(self) -> list[str]:
        return list(self._infos)

    def __contains__(self, member: str) -> bool:
        return member in self._infos

    def declared_size(self, member: str) -> int:
        return self._infos[member].file_size

    def read(self, member: str) -> bytes:
        """The member's bytes, inflated chunk by chunk; raises VignetteError at the first limit crossed, and
        KeyError for a member that is not there."""
        info = self._infos[member]
        # 1. What the directory declares: the size against the budget, and the compression ratio.
        if info.file_size > _RATIO_EXEMPT and info.file_size > self.max_ratio * max(1, info.compress_size):
            raise self._refuse(f"{member!r} unpacks to {info.file_size / max(1, info.compress_size):,.0f} times "
                               f"its packed size, which no text does (a zip bomb)")
        left = None if self.max_total is None else self.max_total - self.read_total
        if left is not None and info.file_size > left:
            raise self._refuse(f"{member!r} unpacks to {_size(info.file_size)}, which takes the archive's text "
                               f"over the limit of {_size(self.max_total)}")
        # 2. What it actually inflates to: counted as it streams, whatever the directory said.
        out = bytearray()
        with self._zf.open(info) as fh:
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                out += chunk
                self.read_total += len(chunk)
                if len(out) > info.file_size:
                    raise self._refuse(f"{member!r} unpacks to more than the {_size(info.file_size)} it declares")
                if self.max_total is not None and self.read_total > self.max_total:
                    raise self._refuse(f"its text unpacks to more than the limit of {_size(self.max_total)}")
        return bytes(out)

    # --- plumbing --------------------------------------------------------------------------------------
    def _refuse(self, why: str) -> VignetteError:
        return VignetteError(
            f"Cannot read {self.name!r}: {why}.",
            hint="A novel's EPUB unpacks to a few MiB; raise VIGNETTE_MAX_FILE_MB if this really is one book.",
        )

    def close(self) -> None:
        self._zf.close()

    def __enter__(self) -> "SafeZip":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _declared_members(data: bytes) -> int | None:
    """The total number of entries the end-of-central-directory record declares (0xFFFF in a zip64
    archive, which is more than any limit here); None when there is no record."""
    tail = data[-(22 + 65535):]
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        return None
    return struct.unpack("<H", tail[at + 10:at + 12])[0]


def parse_xml(data: bytes | BinaryIO, what: str):
    """An ElementTree element from untrusted XML: entity declarations and external references are refused
    (defusedxml), so a few bytes can never expand into gigabytes. Raises ElementTree.ParseError for
    malformed XML and VignetteError for a forbidden construct."""
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException

    try:
        return SafeET.fromstring(data)
    except DefusedXmlException as exc:
        raise VignetteError(
            f"Cannot read {what}: its XML declares entities ({type(exc).__name__}), which an EPUB never needs "
            "and an attack uses to exhaust memory.",
            hint="Use another copy of the book.",
        ) from None
