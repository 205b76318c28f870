"""The tagged short-prompt corpus: deterministic, the committed file is the script's output, splits disjoint."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from engine.faithfulness import parse_elements, score_text

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "assets" / "prompts" / "tagged_prompts.jsonl"


def _script():
    """scripts/make_prompt_corpus.py as a module (registered first: its dataclasses look themselves up)."""
    if "make_prompt_corpus" in sys.modules:
        return sys.modules["make_prompt_corpus"]
    spec = importlib.util.spec_from_file_location("make_prompt_corpus", REPO / "scripts" / "make_prompt_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


def test_the_script_is_deterministic_and_wrote_the_committed_file(tmp_path):
    script = _script()
    assert script.main(["--out", str(tmp_path / "a")]) == 0
    assert script.main(["--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "tagged_prompts.jsonl").read_bytes()
    assert a == (tmp_path / "b" / "tagged_prompts.jsonl").read_bytes()
    assert a == CORPUS.read_bytes(), "assets/prompts is stale: rerun scripts/make_prompt_corpus.py"
    manifest = json.loads((REPO / "assets" / "prompts" / "manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(a).hexdigest() and manifest["seed"] == script.DEFAULT_SEED
    assert script.main(["--out", str(tmp_path / "c"), "--seed", "7", "--n", "200"]) == 0
    assert (tmp_path / "c" / "tagged_prompts.jsonl").read_bytes() != a[: len(a)]


def test_sizes_kinds_and_varied_phrasing(rows):
    splits = Counter(r["split"] for r in rows)
    assert len(rows) >= 2000 and splits["test"] >= 300 and splits["dev"] >= 300
    kinds = Counter(t["kind"] for r in rows for t in r["tags"])
    assert set(kinds) == {"object", "color", "count", "relation", "scene", "style", "action"}
    assert {t["value"] for r in rows for t in r["tags"] if t["kind"] == "relation"} == {
        "left of",
        "right of",
        "on top of",
        "under",
    }
    forms = Counter(r["form"].split("+")[0] for r in rows)
    assert len(forms) >= 5 and max(forms.values()) < 0.4 * len(rows)
    assert len({r["short_prompt"].lower() for r in rows}) == len(rows)


def test_splits_share_no_object_attribute_combination(rows):
    script = _script()
    seen: dict[tuple, str] = {}
    for r in rows:
        spec_combos = combos_of(r["tags"])
        for combo in spec_combos:
            assert seen.setdefault(combo, r["split"]) == r["split"], f"{combo} is in {seen[combo]} and {r['split']}"
            assert script.combo_split(*combo) == r["split"]


def combos_of(tags: list[dict]) -> set[tuple]:
    """The (object, attribute) combinations of a prompt's tags, as the script keys them."""
    objects = [t["value"] for t in tags if t["kind"] == "object"]
    out: set[tuple] = set()
    for t in tags:
        if t["kind"] in ("color", "count"):
            out.add((t["object"], t["kind"], t["value"]))
        elif t["kind"] == "action":
            out.add((t["subject"], "action", t["value"]))
        elif t["kind"] in ("scene", "style"):
            out |= {(o, t["kind"], t["value"]) for o in objects}
    if len(objects) == 2:
        out.add(("pair", *sorted(objects)))
    return out


def test_every_prompt_keeps_its_own_tags(rows):
    failing = [
        r["short_prompt"] for r in rows if not score_text(r["short_prompt"], parse_elements(r["tags"])).all_kept
    ]
    assert failing == []
