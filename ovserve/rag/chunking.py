"""Documents to chunks: .md, .txt and .pdf files, split with overlap, with their source and
position, and an id that is a hash of both (re-ingesting unchanged text changes nothing)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ovserve.errors import InvalidInput

SUFFIXES = (".md", ".markdown", ".txt", ".pdf")


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    source: str  # the file's name relative to the ingested folder
    position: int  # the chunk's index within its source
    section: str = ""  # the Markdown section ("## ...") it is from

    @property
    def metadata(self) -> dict[str, str | int]:
        return {"source": self.source, "position": self.position, "section": self.section}


def read_text(name: str, data: bytes) -> str:
    """The text of a document (``name`` decides the type); ``InvalidInput`` says why not."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInput(f"{name}: unsupported file type {suffix or '(none)'!r}; ingest "
                           f"{', '.join(SUFFIXES)}")
    if suffix == ".pdf":
        return _pdf_text(name, data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _pdf_text(name: str, data: bytes) -> str:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise InvalidInput(f"{name}: not a readable PDF ({exc})") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise InvalidInput(f"{name}: the PDF has no text layer (scanned pages are not OCRed)")
    return text


def split(text: str, size: int = 800, overlap: int = 150) -> list[str]:
    """Chunks of about ``size`` characters, cut at paragraph, line or sentence ends where
    possible, each starting ``overlap`` characters before the previous one ended."""
    text = re.sub(r"\n{3,}", "\n\n", text.strip())
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            window = text[start:end]
            for mark in ("\n\n", "\n", ". ", " "):
                cut = window.rfind(mark)
                if cut > size // 2:
                    end = start + cut + len(mark)
                    break
        chunk = text[start:end].strip()
        if chunk:
            chunks.append(chunk)
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
        while start < end and not text[start - 1].isspace():  # start on a word boundary
            start += 1
    return chunks


def sections(source: str, text: str) -> list[tuple[str, str]]:
    """A Markdown document's ``## `` sections as (heading, text); other files are one."""
    if Path(source).suffix.lower() not in (".md", ".markdown"):
        return [("", text)]
    parts: list[tuple[str, str]] = []
    heading, fenced = "", False
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if line.startswith("## ") and not fenced:
            if "".join(lines).strip():
                parts.append((heading, "\n".join(lines)))
            heading, lines = line[3:].strip(), [line]
        else:
            lines.append(line)
    if "".join(lines).strip():
        parts.append((heading, "\n".join(lines)))
    return parts


def chunk_document(source: str, text: str, size: int = 800, overlap: int = 150) -> list[Chunk]:
    """Chunks of a document; Markdown is cut at its sections first (a chunk never spans two)."""
    pieces = [(heading, piece) for heading, body in sections(source, text)
              for piece in split(body, size, overlap)]
    return [Chunk(hashlib.sha256(f"{source}\0{i}\0{piece}".encode()).hexdigest()[:32], piece,
                  source, i, heading)
            for i, (heading, piece) in enumerate(pieces)]
