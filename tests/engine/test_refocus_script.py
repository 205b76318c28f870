"""scripts/refocus_teacher.py: a new corpus from an old one's teacher responses, focused; the old one untouched."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from annotations.db import open_db
from annotations.pairs import add_pair
from annotations.store import add_response, add_score, upsert_sample
from annotations.tags import set_tags

REPO = Path(__file__).resolve().parents[2]
SAID = "A cat naps on a soft sofa by the window. Rain taps the glass while the light fades slowly."
DRIFT = " The beauty of the room. A man in a hat reads a newspaper in the corner of the kitchen."


def _script():
    spec = importlib.util.spec_from_file_location("refocus_teacher", REPO / "scripts" / "refocus_teacher.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_refocus_keeps_samples_and_teacher_responses_focused_and_drops_mined_data(tmp_path):
    src, dst = tmp_path / "old.db", tmp_path / "new" / "corpus.db"
    engine = open_db(f"sqlite:///{src}")
    cat = upsert_sample(engine, None, "a cat naps on a sofa", "train")
    set_tags(engine, {cat: [{"kind": "object", "value": "cat"}, {"kind": "object", "value": "sofa"}]})
    chosen = add_response(engine, cat, 3, SAID + DRIFT, "teacher", model="sampler")
    beam = add_response(engine, cat, 3, "A dog runs.", "model", model="sft")
    add_score(engine, beam, "faithfulness", 0.0)
    add_pair(engine, cat, 3, chosen, beam)
    engine.dispose()

    assert _script().main(["--src", str(src), "--dst", str(dst), "--focus-words", "30"]) == 0
    new = sqlite3.connect(dst)
    [(text, meta)] = new.execute("SELECT text, meta_json FROM response").fetchall()
    assert text == SAID and json.loads(meta) == {"focus_words": 30, "unfocused": SAID + DRIFT}
    assert new.execute("SELECT count(*) FROM pair").fetchone() == (0,)
    assert new.execute("SELECT count(*) FROM score").fetchone() == (0,)
    assert new.execute("SELECT count(*) FROM sample_tags").fetchone() == (1,)
    old = sqlite3.connect(src)
    assert old.execute("SELECT count(*) FROM response").fetchone() == (2,)  # the source is never written
    with pytest.raises(SystemExit, match="exists"):
        _script().main(["--src", str(src), "--dst", str(dst)])
