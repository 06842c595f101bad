"""Documents to chunks, and ingestion into a real (embedded) Chroma store with the real
embedding model: only what changed is embedded, bad files are skipped with a reason."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from ovserve.errors import InvalidInput
from ovserve.rag.chunking import chunk_document, read_text, split
from ovserve.rag.ingest import documents_in, ingest_paths
from ovserve.rag.store import StoreConfig, VectorStore, VectorStoreError

PARAGRAPH = ("OpenVINO runs the model. " * 12 + "\n\n")


def test_split_overlaps_and_cuts_at_boundaries() -> None:
    text = PARAGRAPH * 6
    chunks = split(text, size=400, overlap=80)
    assert len(chunks) > 3 and all(len(c) <= 400 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        assert after.split()[0] in before.split()  # overlap: the next starts inside
    words = text.split()
    assert chunks[0].split()[:5] == words[:5] and chunks[-1].split()[-5:] == words[-5:]
    ids = [c.id for c in chunk_document("a.md", text, 400, 80)]
    assert len(set(ids)) == len(ids)
    assert ids == [c.id for c in chunk_document("a.md", text, 400, 80)]  # stable


def test_file_types(tmp_path: Path) -> None:
    assert read_text("a.md", b"# Title\nbody") == "# Title\nbody"
    with pytest.raises(InvalidInput, match=r"unsupported file type '\.docx'"):
        read_text("a.docx", b"x")
    with pytest.raises(InvalidInput, match="not a readable PDF"):
        read_text("broken.pdf", b"%PDF-1.4 garbage")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        read_text("latin.txt", "caf\xe9".encode("latin-1"))


def fake_embed(texts: list[str]) -> np.ndarray:
    """Bag-of-letters vectors: deterministic, and similar texts are close."""
    vectors = np.zeros((len(texts), 26), dtype=np.float32)
    for row, text in enumerate(texts):
        for char in text.lower():
            if "a" <= char <= "z":
                vectors[row, ord(char) - 97] += 1
    norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
    normalized: np.ndarray = np.divide(vectors, norms)
    return normalized


def test_ingest_adds_only_what_changed(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "one.md").write_text(PARAGRAPH * 4)
    (docs / "two.txt").write_text("zebra " * 50)
    (docs / "bad.pdf").write_bytes(b"not a pdf")
    (docs / "skip.bin").write_bytes(b"\x00")
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return fake_embed(texts)

    store = VectorStore(StoreConfig(path=tmp_path / "store"))
    first = ingest_paths(store, embed, docs, documents_in(docs))
    assert first.documents == 2 and first.added == store.count() > 2
    assert list(first.skipped) == ["bad.pdf"] and "PDF" in first.skipped["bad.pdf"]
    calls.clear()
    again = ingest_paths(store, embed, docs, documents_in(docs))
    assert again.added == 0 and again.unchanged == first.added and calls == []
    (docs / "two.txt").write_text("yak " * 50)  # changed: its old chunks go
    changed = ingest_paths(store, embed, docs, documents_in(docs))
    assert changed.added >= 1 and changed.removed >= 1
    assert store.count() == first.added - changed.removed + changed.added
    hits = store.query(fake_embed(["yak yak"])[0], 2)
    assert hits[0].source == "two.txt" and hits[0].score > 0.9
    assert set(store.sources()) == {"one.md", "two.txt"}


def test_unreachable_chroma_server_is_a_clear_error() -> None:
    with pytest.raises(VectorStoreError, match=r"127\.0\.0\.1:9"):
        VectorStore(StoreConfig(url="http://127.0.0.1:9"))


def test_markdown_is_cut_at_its_sections() -> None:
    text = ("# Title\nintro\n\n## First\n" + "alpha words here. " * 10 + "\n```\n## not a "
            "heading in code\n```\n\n## Second\n" + "beta words there. " * 10)
    chunks = chunk_document("doc.md", text, size=2000)
    assert [c.section for c in chunks] == ["", "First", "Second"]
    assert "not a heading" in chunks[1].text and chunks[2].text.startswith("## Second")
    assert [c.section for c in chunk_document("doc.txt", text, size=2000)] == [""]


def test_a_chroma_server_as_the_store(tmp_path: Path) -> None:
    """The scale-out option: `chroma run` and the HttpClient, with the same ingestion."""
    import shutil
    import socket
    import subprocess
    import sys
    import time

    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent))
    assert chroma is not None, "chromadb's `chroma` command is not installed"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([chroma, "run", "--path", str(tmp_path / "db"), "--host",
                               "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                store = VectorStore(StoreConfig(url=f"http://127.0.0.1:{port}"))
                break
            except VectorStoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "two.txt").write_text("zebra " * 50)
        report = ingest_paths(store, fake_embed, docs, documents_in(docs))
        assert report.added == store.count() >= 1
        assert store.query(fake_embed(["zebra"])[0], 1)[0].source == "two.txt"
    finally:
        server.terminate()
        server.wait(timeout=30)


def other_embed(texts: list[str]) -> np.ndarray:
    """Another "model": the same letters counted backwards (a different vector space)."""
    return fake_embed(texts)[:, ::-1].copy()


def test_the_store_records_its_model_and_reembeds_when_it_changes(tmp_path: Path) -> None:
    from ovserve.rag.ingest import reembed

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "one.md").write_text(PARAGRAPH * 4)
    (docs / "two.txt").write_text("zebra " * 50)
    store = VectorStore(StoreConfig(path=tmp_path / "store"))
    first = ingest_paths(store, fake_embed, docs, documents_in(docs), model="letters@aaaa")
    chunks = store.count()
    assert first.added == chunks and first.reembedded == 0
    assert store.embedding_models() == {"letters@aaaa": chunks}
    same = ingest_paths(store, fake_embed, docs, documents_in(docs), model="letters@aaaa")
    assert same.added == 0 and same.reembedded == 0
    # another model: every chunk is embedded again, also those of files not ingested now
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return other_embed(texts)

    changed = ingest_paths(store, embed, docs, [docs / "one.md"], model="backwards@bbbb")
    assert changed.reembedded == chunks and changed.added == 0 and sum(calls) == chunks
    assert store.embedding_models() == {"backwards@bbbb": chunks}
    stored = store.collection.get(include=["embeddings", "documents"])
    assert np.allclose(np.asarray(stored["embeddings"]), other_embed(stored["documents"]),
                       atol=1e-6)
    assert store.query(other_embed(["zebra zebra"])[0], 1)[0].source == "two.txt"
    assert reembed(store, other_embed, "backwards@bbbb") == 0  # nothing left to do


def test_chunks_of_an_unrecorded_model_are_reembedded(tmp_path: Path) -> None:
    from ovserve.rag.ingest import reembed

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "two.txt").write_text("zebra " * 50)
    store = VectorStore(StoreConfig(path=tmp_path / "store"))
    ingest_paths(store, fake_embed, docs, documents_in(docs))  # as stores were before
    assert store.embedding_models() == {"": store.count()}
    seen: list[tuple[int, int]] = []
    assert reembed(store, fake_embed, "letters@aaaa", batch=1,
                   progress=lambda done, total: seen.append((done, total))) == store.count()
    assert seen[-1] == (store.count(), store.count()) and len(seen) == store.count()
    assert store.embedding_models() == {"letters@aaaa": store.count()}


def test_model_id_follows_the_weights(tmp_path: Path) -> None:
    import json

    from ovserve.rag.model_id import embedding_model_info

    def folder(name: str, weights: bytes) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "openvino_model.xml").write_text("<net/>")
        (path / "openvino_model.bin").write_bytes(weights)
        (path / "ovserve_model.json").write_text(json.dumps({"name": "mini", "source": "x"}))
        return path

    one = embedding_model_info(folder("a", b"\x00" * 64))
    assert one.id.startswith("mini@") and one.source == "x"
    assert embedding_model_info(folder("b", b"\x00" * 64)).id == one.id  # same weights
    assert embedding_model_info(folder("c", b"\x01" * 64)).id != one.id
    rewritten = tmp_path / "a" / "openvino_model.bin"
    rewritten.write_bytes(b"\x02" * 65)  # a model written over the folder
    assert embedding_model_info(tmp_path / "a").id != one.id
