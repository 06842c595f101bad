"""The web page in a real browser (Debian's headless Chromium driven by Playwright) against a
real server: it lists the models, uploads a document into the RAG graph's store, asks about
it, and shows the streamed answer with its sources."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.transport.server import Server
from tests.transport.test_rag_server import PENGUINS
from tests.transport.test_rag_server import server as rag_server  # noqa: F401  (fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page(rag_server: Server) -> Iterator[object]:  # noqa: F811
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(f"{rag_server.rest_url}/")
        yield page
        browser.close()


def test_ask_upload_and_read_sources(page: object, tmp_path: Path) -> None:
    from playwright.sync_api import Page, Route, expect

    assert isinstance(page, Page)
    expect(page.locator("#models li")).to_have_text(["rag"])  # the only OpenAI model here
    expect(page.locator("#model")).to_have_value("rag")
    document = tmp_path / "penguins.txt"
    document.write_text(PENGUINS)
    page.set_input_files("#files", str(document))
    page.click("#upload-button")
    expect(page.locator("#upload-result")).to_contain_text("penguins.txt:")
    expect(page.locator("#documents")).to_contain_text("penguins.txt")
    def forced(route: Route) -> None:  # the page's own request, its length forced
        body = json.loads(route.request.post_data or "{}")
        route.continue_(post_data=json.dumps({**body, "max_tokens": 12, "min_tokens": 12}))

    page.route("**/v1/chat/completions", forced)
    page.fill("#question", "Where do emperor penguins breed?")
    page.click("#ask-button")
    expect(page.locator("#sources li").first).to_contain_text("penguins.txt")
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
