"""The engine CLI end to end, in subprocesses, as a user runs it."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_task3_with_the_packaged_smollm2_prints_a_real_expansion():
    proc = run_cli("--json", "generate", "--task", "3", "--prompt", "A woman is walking.", "--max-new-tokens", "40")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["model"] == "smollm2-135m" and payload["random_weights"] is False
    text = payload["candidates"][0]
    # A real (if weak) model writes English words; random weights would emit byte garbage.
    words = [w for w in text.split() if w.isalpha()]
    assert len(words) >= 10 and text.isprintable()


@pytest.mark.slow
def test_task1_with_the_tiny_vlm_runs_the_whole_video_path(sample_video):
    proc = run_cli(
        "generate",
        "--task",
        "1",
        "--video",
        str(sample_video),
        "--model",
        "tiny-random-vlm",
        "--max-new-tokens",
        "8",
        "--num-beams",
        "3",
        "--num-return",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("[tiny-random-vlm: random weights — pipeline check only]")
    assert "[1] " in proc.stdout and "[2] " in proc.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["generate", "--task", "1", "--video", "/nonexistent.mp4", "--model", "tiny-random-vlm"], "video not found"),
        (["generate", "--task", "3", "--prompt", "  "], "needs a short prompt"),
        (["generate", "--task", "3", "--prompt", "hi", "--model", "gpt-9"], "unknown model 'gpt-9'"),
        (["generate", "--task", "2", "--video", "x.mp4"], "needs a short caption"),
        (["generate", "--task", "3", "--prompt", "hi", "--num-beams", "2", "--num-return", "3"], "cannot exceed"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


def test_huge_prompt_is_refused(tmp_path):
    proc = run_cli("generate", "--task", "3", "--prompt", "word " * 20_000)
    assert proc.returncode == 2 and "the limit is" in proc.stderr


def test_every_verb_is_registered_in_one_parser():
    from engine.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {
        "generate",
        "hallucinate-text",
        "hallucinate-video",
        "score",
        "judge",
        "mine-pairs",
        "teacher",
        "evaluate",
        "record-instructions",
        "generate-video",
        "evaluate-video",
        "ground",
        "strength",
        "tokens",
        "presets",
    }


def test_record_instructions(tmp_path, capsys):
    from annotations.db import open_db
    from annotations.store import instructions
    from engine.cli import main
    from engine.tasks import TASK1_INSTRUCTION, TASK2_TEMPLATE, TASK3_TEMPLATE

    url = f"sqlite:///{tmp_path / 'studio.db'}"
    assert main(["record-instructions", "--db", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == [1, 2, 3]
    assert instructions(open_db(url)) == {1: TASK1_INSTRUCTION, 2: TASK2_TEMPLATE, 3: TASK3_TEMPLATE}
    assert main(["record-instructions", "--db", url]) == 0  # again: nothing changes
    assert "recorded the instructions of tasks 1, 2, 3" in capsys.readouterr().out
    assert main(["record-instructions", "--db", "nosuchdb://x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_presets_lists_every_registry_with_its_status_and_loads_nothing():
    """`python -m engine presets`: one line per preset of the three registries, what runs here and why not."""
    proc = run_cli("--json", "presets", timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["presets"]
    by_name = {(r["registry"], r["name"]): r for r in rows}
    assert {r["registry"] for r in rows} == {"model", "evaluator", "t2v"}
    assert by_name[("model", "smollm2-135m")]["ok"] is True  # the embedded default is always here
    assert by_name[("model", "tiny-random-lm")]["status"].startswith("random weights")
    assert all("\n" not in r["status"] for r in rows)  # one line each
    only = json.loads(run_cli("--json", "presets", "--registry", "t2v").stdout)["presets"]
    assert only and {r["registry"] for r in only} == {"t2v"}


def test_every_verb_prints_its_help(capsys):
    """`engine evaluate --help` crashed: a field docstring with "%" went into argparse's %-formatted help."""
    from engine.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for verb in sub.choices:
        with pytest.raises(SystemExit) as done:
            parser.parse_args([verb, "--help"])
        assert done.value.code == 0, verb
        assert "usage:" in capsys.readouterr().out
