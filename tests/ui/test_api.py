"""Every contract endpoint through gradio_client against a launched app.py: good input, bad input
(clear message), and the app still serving afterwards."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError, ValidationError

from tests.app_server import REPO, SAMPLES, Server, judgements, page_ok

BUNNY = str(SAMPLES / "bunny.mp4")
HUGE = "x" * 100_000
CONTRACT = [
    "/describe_video",
    "/describe_video_with_caption",
    "/beautify",
    "/hallucinate_text",
    "/hallucinate_video",
    "/next_pair",
    "/vote",
    "/launch_training",
    "/training_status",
]


def refused(client, api_name: str, *args, match: str) -> None:
    # ValidationError: a text over its bound, refused before the handler runs (app.InputBounds, issue 24 item 5)
    with pytest.raises((AppError, ValidationError), match=match):
        client.predict(*args, api_name=api_name)


def test_contract_api_names(local_client) -> None:
    names = set(local_client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert set(CONTRACT) <= names


# -- Task 3 ---------------------------------------------------------------------------------------


def test_beautify_tiny_model_is_labelled_random(local_client) -> None:
    status, table = local_client.predict(
        "A dog runs on the beach.", "tiny-random-lm", 2, 2, 0, 8, False, api_name="/beautify"
    )
    assert "random weights — pipeline check only" in status
    assert len(table["data"]) == 2
    assert all("random weights" in row[3] for row in table["data"])


@pytest.mark.parametrize(
    ("prompt", "model", "match"),
    [
        ("", "tiny-random-lm", "short prompt is empty"),
        ("   ", "tiny-random-lm", "short prompt is empty"),
        (HUGE, "tiny-random-lm", "100,000 characters; the limit is 20,000"),
        ("A dog runs.", "no-such-model", "model 'no-such-model' is not available here"),
    ],
)
def test_beautify_bad_input(local_client, local_app: Server, prompt: str, model: str, match: str) -> None:
    refused(local_client, "/beautify", prompt, model, 1, 1, 0, 8, False, match=match)
    assert local_app.alive()


def test_beautify_bad_settings(local_client) -> None:
    refused(
        local_client, "/beautify", "A dog runs.", "tiny-random-lm", 1, 3, 0, 8, False, match="cannot exceed num_beams"
    )


# -- Tasks 1 and 2 --------------------------------------------------------------------------------


def test_describe_video_default_model_says_why(local_client) -> None:
    refused(local_client, "/describe_video", handle_file(BUNNY), "qwen2.5-vl-3b", match="'qwen2.5-vl-3b' cannot load")


def test_describe_video_tiny(local_client) -> None:
    status, table = local_client.predict(
        handle_file(BUNNY),
        "tiny-random-vlm",
        2,
        2,
        0,
        8,
        ["clip-vit-l-14", "tiny-random-clip"],
        api_name="/describe_video",
    )
    assert "random weights — pipeline check only" in status
    assert "clip-vit-l-14" in status and "cannot load" in status  # the real evaluator says why it was skipped
    assert len(table["data"]) == 2


def test_describe_video_non_video(local_client, local_app: Server) -> None:
    refused(
        local_client,
        "/describe_video",
        handle_file(str(REPO / "pyproject.toml")),
        "tiny-random-vlm",
        match="not a readable video",
    )
    assert local_app.alive()


def test_describe_video_with_caption(local_client) -> None:
    status, _ = local_client.predict(
        handle_file(BUNNY), "A rabbit.", "tiny-random-vlm", 1, 1, 0, 8, [], api_name="/describe_video_with_caption"
    )
    assert "Task 2" in status
    refused(local_client, "/describe_video_with_caption", handle_file(BUNNY), "", "tiny-random-vlm", match="caption")
    refused(local_client, "/describe_video_with_caption", handle_file(BUNNY), HUGE, "tiny-random-vlm", match="limit")
    refused(
        local_client,
        "/describe_video_with_caption",
        handle_file(BUNNY),
        "A rabbit.",
        "nope",
        match="model 'nope' is not available here",
    )


# -- viewer ---------------------------------------------------------------------------------------


def test_hallucinate_text(local_client) -> None:
    text = "Two boys throw a white ball to the left."
    original, swapped, edits = local_client.predict(text, 1, 3, 2, api_name="/hallucinate_text")
    assert "".join(t["token"] for t in original) == text
    labelled = [t for t in swapped if t["class_or_confidence"]]
    assert labelled and len(labelled) == len(edits["data"])
    assert {t["class_or_confidence"] for t in labelled} <= {"noun", "number", "color", "direction", "verb"}


@pytest.mark.parametrize(("text", "match"), [("", "paste a response"), (HUGE, "the limit is 20,000")])
def test_hallucinate_text_bad(local_client, text: str, match: str) -> None:
    refused(local_client, "/hallucinate_text", text, 1, 3, 0, match=match)


def test_hallucinate_video(local_client) -> None:
    original, perturbed, strip, ops = local_client.predict(
        handle_file(BUNNY),
        ["shuffle frames", "paste patches"],
        0.33,
        0.5,
        0.8,
        1.0,
        6,
        1,
        api_name="/hallucinate_video",
    )
    assert Path(original).stat().st_size > 0 and Path(perturbed).stat().st_size > 0
    assert len(strip) == 12
    assert ops


def test_hallucinate_video_bad(local_client) -> None:
    refused(
        local_client,
        "/hallucinate_video",
        handle_file(str(REPO / "pyproject.toml")),
        ["shuffle frames"],
        match="video",
    )
    refused(local_client, "/hallucinate_video", handle_file(BUNNY), [], match="at least one method")


# -- labelling ------------------------------------------------------------------------------------


def test_next_pair_and_vote(local_client, local_app: Server) -> None:
    before = len(judgements(local_app.db_url, "local"))
    prompt, video, left, right, progress, *_ = local_client.predict(api_name="/next_pair")
    assert "Pair #" in prompt and left and right and Path(video).exists()
    reveal, *_ = local_client.predict("a_better", api_name="/vote")
    assert "Your vote" in reveal and "tiny-random-clip" in reveal  # scores revealed after the vote
    assert len(judgements(local_app.db_url, "local")) == before + 1


def test_vote_bad_choice(local_client) -> None:
    local_client.predict(api_name="/next_pair")
    refused(local_client, "/vote", "delete_everything", match="unknown choice")
    refused(local_client, "/vote", HUGE, match="the limit is 20,000")


def test_vote_without_pair(local_client) -> None:
    refused(local_client, "/vote", "a_better", match="no pair on screen")


# -- admin ----------------------------------------------------------------------------------------


def test_annotator_cannot_launch_training(annotator_client, auth_app: Server) -> None:
    yaml_text = (REPO / "configs" / "tiny-cpu.yaml").read_text()
    refused(annotator_client, "/launch_training", "tiny-cpu", yaml_text, "", match="needs the admin role")
    refused(annotator_client, "/training_status", 1, match="needs the admin role")
    assert auth_app.proc.poll() is None


def test_annotator_votes_under_own_name(annotator_client, auth_app: Server) -> None:
    annotator_client.predict(api_name="/next_pair")
    annotator_client.predict("tie", api_name="/vote")
    assert [j["choice"] for j in judgements(auth_app.db_url, "ann")] == ["tie"]


def test_wrong_password_refused(auth_app: Server) -> None:
    from gradio_client import Client

    with pytest.raises(Exception, match="(?i)login|auth|credentials|401|403"):
        Client(auth_app.url, auth=("ada", "wrong-password"), verbose=False)


def test_training_status_bad_inputs(local_client) -> None:
    refused(local_client, "/training_status", 987654, match="no training run 987654")
    refused(local_client, "/launch_training", "no-such-preset", "", "", match="not in the list of choices")
    refused(local_client, "/launch_training", "tiny-cpu", "", "not an override", match="key=value")


# -- file serving ---------------------------------------------------------------------------------


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - local test server
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../../../../etc/passwd",
        "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        str(REPO / "app.py"),
        str(REPO / "pyproject.toml"),
        str(SAMPLES / ".." / ".." / "app.py"),
    ],
)
def test_file_route_refuses_paths_outside_allowed(local_app: Server, path: str) -> None:
    assert _status(f"{local_app.url}gradio_api/file={path}") in (403, 404)


def test_file_route_refuses_db(local_app: Server) -> None:
    db_file = local_app.db_url.removeprefix("sqlite:///")
    assert _status(f"{local_app.url}gradio_api/file={db_file}") in (403, 404)


def test_file_route_serves_sample_clips(local_app: Server) -> None:
    assert _status(f"{local_app.url}gradio_api/file={SAMPLES / 'bunny.mp4'}") == 200


def test_app_still_serving(local_app: Server) -> None:
    assert page_ok(local_app.url)
