"""Fixtures for the UI tests: app.py launched in a subprocess (local mode and with accounts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ui.app_server import ADMIN, ANNOTATOR, Server, seed_pairs, start_app


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
