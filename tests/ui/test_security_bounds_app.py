"""Issue 24 items 5 and 13 against a running app.py: every text input is bounded server-side before Gradio
parses it, and sign-out is a same-origin POST (a cross-site GET to /logout ends nobody's session)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

import app
from tests.app_server import ANNOTATOR, Server, start_app


@pytest.fixture(scope="module")
def bounded_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_app(tmp_path_factory.mktemp("bounded-app"), auth=True)
    yield server
    server.stop()


def _client(server: Server):  # type: ignore[no-untyped-def]
    from gradio_client import Client

    return Client(server.url, auth=ANNOTATOR, verbose=False)


def test_a_huge_text_is_refused_at_the_door_in_under_2_s(bounded_app: Server) -> None:
    client = _client(bounded_app)
    start = time.monotonic()
    with pytest.raises(Exception, match="413") as info:
        client.predict("word " * 1_080_000, "clip-l", api_name="/token_budget")  # 5.4 MB, as the probe
    assert time.monotonic() - start < 2.0, info.value
    view, _data = client.predict("A dog runs on the beach.", "clip-l", api_name="/token_budget")
    assert "dog" in view and bounded_app.alive()


def test_a_text_over_its_bound_is_one_line_naming_it(bounded_app: Server) -> None:
    client = _client(bounded_app)
    too_long = "a" * (app.MAX_TEXT_CHARS + 1)
    with pytest.raises(Exception) as info:
        client.predict(too_long, "clip-l", api_name="/token_budget")
    assert f"text is {app.MAX_TEXT_CHARS + 1:,} characters; the limit is {app.MAX_TEXT_CHARS:,}" in str(info.value)
    within = "A red kite. " * 1500  # 18,000 characters
    view, _data = client.predict(within, "clip-l", api_name="/token_budget")
    assert "kite" in view


def _signed_in(server: Server) -> httpx.Client:
    http = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
    response = http.post("/login", data={"username": ANNOTATOR[0], "password": ANNOTATOR[1]})
    assert response.status_code == 200, response.text
    assert http.get("/config").status_code == 200
    return http


def test_a_cross_site_get_or_post_to_logout_ends_no_session(bounded_app: Server) -> None:
    http = _signed_in(bounded_app)
    page = http.get("/logout", headers={"Referer": "https://evil.example/page"})
    assert page.status_code == 200 and "method='post'" in page.text
    refused = http.post("/logout", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and "this app's own page" in refused.text
    assert http.post("/logout").status_code == 403  # no Origin, no Referer: not known to be ours
    assert http.get("/config").status_code == 200  # still signed in


def test_a_same_origin_post_signs_out(bounded_app: Server) -> None:
    http = _signed_in(bounded_app)
    token = dict(http.cookies)
    origin = bounded_app.url.rstrip("/")
    response = http.post("/logout", headers={"Origin": origin})
    assert response.status_code in (302, 303, 307)
    http.cookies.clear()
    http.cookies.update(token)  # the old cookie, sent again: the server has forgotten it
    assert http.get("/config").status_code == 401
