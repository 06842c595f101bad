"""The web page in a real browser (Debian's headless Chromium driven by Playwright) against a
real server: it lists the models, uploads a document into the RAG graph's store, asks about
it, and shows the streamed answer with its sources and the embedding model the store was built
with; with a graph that reranks, the sources in the reranker's order with their scores."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Route

from tests.conftest import EMBEDDING_MODEL_DIR
from tests.transport.server import Server, start_server
from tests.transport.test_rag_server import PENGUINS
from tests.transport.test_rag_server import server as rag_server  # noqa: F401  (fixture)
from tests.transport.test_rerank_api import PENGUINS as SHORT_PENGUINS
from tests.transport.test_rerank_api import VOLCANOES
from tests.transport.test_rerank_api import _graph as rerank_graph

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium for the module (Playwright's sync API runs one at a time)."""
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def browse(browser: object, server: Server) -> object:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(f"{server.rest_url}/")
    return page


@pytest.fixture(scope="module")
def page(browser: object, rag_server: Server) -> object:  # noqa: F811
    return browse(browser, rag_server)


def forced(route: Route) -> None:
    """The page's own chat request, its length forced (the text may be anything)."""
    body = json.loads(route.request.post_data or "{}")
    route.continue_(post_data=json.dumps({**body, "max_tokens": 12, "min_tokens": 12}))


def stock_model_id() -> str:
    from ovserve.rag.model_id import embedding_model_info

    return embedding_model_info(EMBEDDING_MODEL_DIR).id


def test_ask_upload_and_read_sources(page: object, tmp_path: Path) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    expect(page.locator("#models li")).to_have_text(["rag"])  # the only OpenAI model here
    expect(page.locator("#model")).to_have_value("rag")
    document = tmp_path / "penguins.txt"
    document.write_text(PENGUINS)
    page.set_input_files("#files", str(document))
    page.click("#upload-button")
    expect(page.locator("#upload-result")).to_contain_text("penguins.txt:")
    expect(page.locator("#documents")).to_contain_text("penguins.txt")
    expect(page.locator("#store-model")).to_have_text(
        f"Store built with embedding model {stock_model_id()} (builtin:all-minilm-l6-v2)")
    page.route("**/v1/chat/completions", forced)
    page.fill("#question", "Where do emperor penguins breed?")
    page.click("#ask-button")
    expect(page.locator("#sources li").first).to_contain_text("penguins.txt")
    expect(page.locator("#sources-note")).to_have_text(
        f"Sources by vector similarity (best first); retrieved with {stock_model_id()}")
    scores = [float(s or "nan") for s in page.locator("#sources li").evaluate_all(
        "items => items.map(item => item.dataset.score)")]
    assert len(scores) >= 1 and scores == sorted(scores, reverse=True)
    expect(page.locator("#answer")).not_to_be_empty()
    expect(page.locator("#ask-button")).to_be_enabled(timeout=60_000)  # the stream ended
    assert "error" not in (page.locator("#answer").get_attribute("class") or "")
    shot = tmp_path / "web-page.png"  # docs/web-page.png in the README is one of these
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_a_bad_upload_is_shown_as_an_error(page: object, tmp_path: Path) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 not really")
    page.set_input_files("#files", str(bad))
    page.click("#upload-button")
    expect(page.locator("#upload-result")).to_contain_text("not a readable PDF")
    expect(page.locator("#upload-result")).to_have_class("error")


@pytest.fixture(scope="module")
def rerank_server(reranker_model_dir: Path, default_model_dir: Path, embedding_model_dir: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A RAG graph with its rerank stage on (the built-in reranker: 6 candidates, top 2)."""
    root = tmp_path_factory.mktemp("web-rerank")
    (root / "rag").mkdir()
    (root / "rag" / "graph.pbtxt").write_text(rerank_graph("rag", root / "store", rerank=True))
    config = root / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": [
        {"name": "rag", "base_path": str(root / "rag")}]}))
    server = start_server(config)
    yield server
    assert server.terminate() == 0


def test_reranked_sources_are_shown_in_order_with_their_scores(browser: object,
                                                              rerank_server: Server) -> None:
    from playwright.sync_api import Page, expect

    for name, text in (("penguins.txt", SHORT_PENGUINS), ("volcanoes.md", VOLCANOES),
                       ("france.txt", "Paris is the capital of France. " * 5)):
        response = httpx.put(f"{rerank_server.rest_url}/v1/rag/rag/documents/{name}",
                             content=text.encode(), timeout=60)
        assert response.status_code == 200, response.text
    page = browse(browser, rerank_server)
    assert isinstance(page, Page)
    expect(page.locator("#store-model")).to_contain_text(
        f"Store built with embedding model {stock_model_id()}")
    page.route("**/v1/chat/completions", forced)
    page.fill("#question", "Which birds keep their eggs warm on their feet?")
    page.click("#ask-button")
    items = page.locator("#sources li")
    expect(items).to_have_count(2)  # the graph's top_k of its 6 reranked candidates
    expect(page.locator("#sources-note")).to_have_text(
        "Sources reranked by minilm-l6-reranker (best first); retrieved with "
        f"{stock_model_id()}")
    for number in range(2):
        expect(items.nth(number)).to_contain_text("rerank score")
        expect(items.nth(number)).to_contain_text("vector score")
    reranked = [float(s or "nan") for s in items.evaluate_all(
        "items => items.map(item => item.dataset.rerankScore)")]
    assert reranked == sorted(reranked, reverse=True)  # the reranker's order, best first
    expect(page.locator("#ask-button")).to_be_enabled(timeout=60_000)
    assert "error" not in (page.locator("#answer").get_attribute("class") or "")
