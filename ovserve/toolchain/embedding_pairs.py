"""(query, passage) pairs for fine-tuning an embedding model, made from the documents' own
structure, with the passages cut exactly as the RAG store cuts them (``ovserve.rag.chunking``).

Three kinds of query, each paired with the store chunk it comes from:

- ``title``: a Markdown heading (``##``/``###``) or a paragraph's bold lead-in
  (``**Reranking.** ...``) -> the chunk under it. Titles are how people name what they look for.
- ``sentence``: the first sentence of a paragraph -> the chunk with that sentence cut out
  (the inverse cloze task: the passage must be found from what surrounds it, not from a copy).
- ``question`` (only on request): user-written questions whose ``split`` is not ``heldout``,
  -> a chunk of the section they name.

No LLM writes queries: the 135M built-in model would invent facts, and structure-made queries
cost nothing, are reproducible and cannot leak an evaluation question into training
(``drop_questions`` removes any pair whose query is one of them all the same).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from ovserve.rag.chunking import Chunk, chunk_document

MIN_QUERY, MAX_QUERY = 4, 300  # characters
_BOLD_LEAD = re.compile(r"^\*\*([^*\n]{4,120}?)\*\*")
_HEADING = re.compile(r"^#{2,4}\s+(.+?)\s*$", re.M)
_FENCE = re.compile(r"```.*?```", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`*(\"])")


@dataclass(frozen=True)
class Pair:
    query: str
    passage: str
    kind: str  # "title" | "sentence" | "question"
    chunk: int  # index of the passage's chunk (a batch holds each chunk once)


def corpus_files(paths: list[Path]) -> list[tuple[str, Path]]:
    """(source name, file) of the Markdown and text files among ``paths`` (folders walked as
    the ingestion walks them; PDFs are left out: their text has no structure to use)."""
    from ovserve.rag.ingest import documents_in

    files: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_dir():
            files += [(f.relative_to(path).as_posix(), f) for f in documents_in(path)]
        elif path.is_file():
            files.append((path.name, path))
    return [(name, f) for name, f in files if f.suffix.lower() != ".pdf"]


def corpus_chunks(paths: list[Path]) -> list[Chunk]:
    """The chunks the RAG store would hold for ``paths``."""
    return [chunk for name, file in corpus_files(paths)
            for chunk in chunk_document(name, file.read_text(errors="replace"))]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("`", "").replace("**", "")).strip(" #*-:.")


def _cut(text: str, span: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text.replace(span, " ", 1)).strip()


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in _FENCE.sub("\n\n", text).split("\n\n") if p.strip()]


def chunk_pairs(chunk: Chunk, index: int) -> list[Pair]:
    """The title and first-sentence pairs of one chunk."""
    pairs: list[Pair] = []
    seen: set[str] = set()

    def add(query: str, passage: str, kind: str) -> None:
        query = _clean(query)
        if MIN_QUERY <= len(query) <= MAX_QUERY and query.lower() not in seen and passage:
            seen.add(query.lower())
            pairs.append(Pair(query, passage, kind, index))

    for heading in _HEADING.finditer(chunk.text):
        add(heading.group(1), _cut(chunk.text, heading.group(0)), "title")
    if chunk.section and not _HEADING.search(chunk.text):  # a later chunk of a section
        add(chunk.section, chunk.text, "title")
    for number, paragraph in enumerate(_paragraphs(chunk.text)):
        if paragraph.startswith(("#", "|", "-", "*   ", "![")) and not _BOLD_LEAD.match(
                paragraph):
            continue
        lead = _BOLD_LEAD.match(paragraph)
        if lead:
            add(lead.group(1), _cut(chunk.text, lead.group(0)), "title")
            paragraph = paragraph[lead.end():].strip()
            if not paragraph:
                continue
        first = _SENTENCE_END.split(paragraph, maxsplit=1)[0]
        # a paragraph of more than one sentence; a chunk's first paragraph may be cut in the
        # middle of a sentence (chunks overlap), so it counts only when it starts like one
        if first != paragraph and (number > 0 or first[0].isupper() or first[0] in "`*"):
            add(first, _cut(chunk.text, first), "sentence")
    return pairs


def structure_pairs(chunks: list[Chunk], per_query: int = 3) -> list[Pair]:
    """The title and first-sentence pairs of ``chunks``; a query that titles many chunks (a
    long section's heading) keeps ``per_query`` of them, spread over the section, so the few
    headings of a corpus do not outnumber everything else."""
    pairs = [pair for index, chunk in enumerate(chunks) for pair in chunk_pairs(chunk, index)]
    by_query: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_query.setdefault(pair.query, []).append(pair)
    kept: set[int] = set()
    for same in by_query.values():
        step = max(1, len(same) / per_query)
        kept.update(id(same[int(i * step)]) for i in range(min(per_query, len(same))))
    return [pair for pair in pairs if id(pair) in kept]


def read_questions(path: Path) -> list[dict[str, str]]:
    """The rows of a retrieval-questions JSONL (``question``, ``section``, ``split``)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def question_pairs(rows: list[dict[str, str]], chunks: list[Chunk],
                   rng: random.Random) -> list[Pair]:
    """Pairs of the questions not marked ``heldout``, each with one chunk of its section."""
    pairs = []
    for row in rows:
        if row.get("split") == "heldout":
            continue
        candidates = [i for i, c in enumerate(chunks) if c.section == row["section"]]
        if candidates:
            index = rng.choice(candidates)
            pairs.append(Pair(row["question"], chunks[index].text, "question", index))
    return pairs


def drop_questions(pairs: list[Pair], questions: list[str]) -> tuple[list[Pair], int]:
    """``pairs`` without any whose query is (case and spacing aside) one of ``questions``,
    and how many were dropped."""
    banned = {_clean(q).lower() for q in questions}
    kept = [p for p in pairs if _clean(p.query).lower() not in banned]
    return kept, len(pairs) - len(kept)


def batches(pairs: list[Pair], size: int, rng: random.Random) -> list[list[Pair]]:
    """One epoch of batches in which no chunk and no query appears twice: in-batch negatives
    must not contain the positive itself (sentence-transformers' NoDuplicatesBatchSampler)."""
    pending = pairs[:]
    rng.shuffle(pending)
    out: list[list[Pair]] = []
    while pending:
        batch: list[Pair] = []
        chunks: set[int] = set()
        queries: set[str] = set()
        rest: list[Pair] = []
        for pair in pending:
            if len(batch) < size and pair.chunk not in chunks and pair.query not in queries:
                batch.append(pair)
                chunks.add(pair.chunk)
                queries.add(pair.query)
            else:
                rest.append(pair)
        if len(batch) < 2:  # what is left cannot make in-batch negatives
            break
        out.append(batch)
        pending = rest
    return out
