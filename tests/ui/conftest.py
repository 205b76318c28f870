"""Fixtures for the UI tests: app.py launched in a subprocess (local mode and with accounts), and for the
browser tests: chromium (one per module), a fresh page on the module's `app`, the screenshot folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_server import ADMIN, ANNOTATOR, Server, seed_pairs, start_app
from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS, open_page


@pytest.fixture(scope="session")
def local_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Single-user local mode (user "local", admin), 6 seeded pairs."""
    server = start_app(tmp_path_factory.mktemp("local-app"))
    seed_pairs(server.db_url, 6)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Accounts from an auth file: ada (admin) and ann (annotator), 4 seeded pairs."""
    server = start_app(tmp_path_factory.mktemp("auth-app"), auth=True)
    seed_pairs(server.db_url, 4)
    yield server
    server.stop()


@pytest.fixture()
def local_client(local_app: Server):
    from gradio_client import Client

    return Client(local_app.url, verbose=False)


@pytest.fixture()
def admin_client(auth_app: Server):
    from gradio_client import Client

    return Client(auth_app.url, auth=ADMIN, verbose=False)


@pytest.fixture()
def annotator_client(auth_app: Server):
    from gradio_client import Client

    return Client(auth_app.url, auth=ANNOTATOR, verbose=False)


# -- browser tests (tests/ui/browser.py) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless chromium through Playwright, one per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, app: Server) -> Iterator:
    """A fresh page on the module's `app` fixture, loaded; its context closed afterwards."""
    page, _ = open_page(browser, app.url)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $VIDPROMPTER_SCREENSHOTS (docs/screenshots for the README's), else a tmp folder."""
    out = Path(os.environ.get("VIDPROMPTER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out
