"""(query, passage) pairs from a document's structure: what each kind is, that the passage is
the store's chunk with the query cut out, that held-out questions never train, and that a batch
never holds a chunk or a query twice (in-batch negatives must not contain the positive)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from ovserve.toolchain.embedding_pairs import batches, corpus_chunks, structure_pairs
from ovserve.toolchain.finetune_embeddings import make_pairs

DOC = """# Garden handbook

## Watering the tomatoes

Tomatoes want deep watering twice a week. Shallow daily watering keeps the roots near the
surface, where they dry out in July.

**Mulch.** A layer of straw keeps the soil moist and stops the leaves touching wet earth.

## Pruning apple trees

Prune apple trees in late winter while they are dormant. Cut out crossing branches first,
then thin the crown so that light reaches the middle of the tree.
"""


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garden.md").write_text(DOC)
    (folder / "scan.pdf").write_bytes(b"%PDF-1.4")  # no structure: left out
    return folder


def test_titles_lead_ins_and_first_sentences(tmp_path: Path) -> None:
    chunks = corpus_chunks([write_corpus(tmp_path / "docs")])
    assert {c.source for c in chunks} == {"garden.md"}
    pairs = structure_pairs(chunks)
    by_query = {p.query: p for p in pairs}
    assert by_query["Watering the tomatoes"].kind == "title"
    assert by_query["Mulch"].kind == "title"
    first = "Tomatoes want deep watering twice a week."
    assert by_query[first.rstrip(".")].kind == "sentence"
    assert by_query["Prune apple trees in late winter while they are dormant"].kind == "sentence"
    for pair in pairs:  # the query is cut out of its own chunk's text
        assert pair.query not in pair.passage
        assert set(pair.passage.split()) <= set(chunks[pair.chunk].text.split())
    assert not any(p.query.startswith(("surface", "then thin")) for p in pairs)


def test_held_out_questions_never_train(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    questions = tmp_path / "questions.jsonl"
    rows = [{"question": "Watering the tomatoes", "section": "Watering the tomatoes",
             "split": "heldout"},
            {"question": "When should I prune an apple tree?",
             "section": "Pruning apple trees", "split": "train"}]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for use in (False, True):
        pairs, counts = make_pairs([docs], questions, use, random.Random(0))
        queries = {p.query for p in pairs}
        assert "Watering the tomatoes" not in queries  # a heading, but also a held-out question
        assert counts["dropped_as_questions"] == 1
        assert ("When should I prune an apple tree?" in queries) is use
        if use:
            asked = next(p for p in pairs if p.kind == "question")
            assert "Prune apple trees in late winter" in asked.passage


def test_batches_hold_each_chunk_and_query_once(tmp_path: Path) -> None:
    chunks = corpus_chunks([write_corpus(tmp_path / "docs")])
    pairs = structure_pairs(chunks) * 3  # many pairs per chunk, each query three times
    epoch = batches(pairs, 4, random.Random(1))
    assert epoch and all(2 <= len(b) <= 4 for b in epoch)
    for batch in epoch:
        assert len({p.chunk for p in batch}) == len(batch)
        assert len({p.query for p in batch}) == len(batch)
