"""Auth file: bcrypt hashes, roles, add-user command, and role checks in the handlers."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

import app
from ui.auth import Accounts, AuthFileError, add_user, read_auth_file
from ui.common import AppContext


def test_add_user_hashes_and_checks(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    add_user(path, "ada", "correct horse", "admin", rounds=4)
    add_user(path, "ann", "battery staple", rounds=4)
    text = path.read_text()
    assert "correct horse" not in text and "$2b$" in text
    assert path.stat().st_mode & 0o777 == 0o600
    accounts = Accounts.load(path)
    assert accounts.check("ada", "correct horse")
    assert not accounts.check("ada", "battery staple")
    assert not accounts.check("nobody", "correct horse")
    assert (accounts.role("ada"), accounts.role("ann")) == ("admin", "annotator")


@pytest.mark.parametrize(
    ("name", "password", "role", "match"),
    [
        ("ada", "short", "admin", "too short"),
        ("bad name!", "long enough", "admin", "user name"),
        ("ada", "long enough", "root", "role"),
    ],
)
def test_add_user_rejects(tmp_path: Path, name: str, password: str, role: str, match: str) -> None:
    with pytest.raises(AuthFileError, match=match):
        add_user(tmp_path / "a.json", name, password, role, rounds=4)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json", "cannot read"),
        ('{"people": []}', 'needs a "users" object'),
        ('{"users": {"x": {"role": "admin"}}}', "password_hash"),
        ('{"users": {"x": {"password_hash": "h", "role": "god"}}}', "role 'god'"),
        ('{"users": {}}', "no users"),
    ],
)
def test_bad_auth_files(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "auth.json"
    path.write_text(content)
    with pytest.raises(AuthFileError, match=match):
        Accounts.load(path)


def test_missing_auth_file(tmp_path: Path) -> None:
    with pytest.raises(AuthFileError, match="not found"):
        read_auth_file(tmp_path / "nope.json")


def test_example_auth_file_is_valid() -> None:
    accounts = Accounts.load(Path(__file__).resolve().parents[2] / "configs" / "auth.example.json")
    assert set(accounts.names()) == {"admin", "annotator"}


def test_add_user_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "auth.json"
    monkeypatch.setenv(app.PASSWORD_ENV, "a long password")
    assert app.main(["--add-user", "ada", "--role", "admin", "--auth-file", str(path)]) == 0
    assert json.loads(path.read_text())["users"]["ada"]["role"] == "admin"
    assert app.main(["--add-user", "ada"]) == 2  # no --auth-file


def test_roles_enforced_in_handlers(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    add_user(path, "ann", "battery staple", rounds=4)
    ctx = AppContext(studio=None, db=None, jobs=None, accounts=Accounts.load(path), work_dir=tmp_path)  # roles only
    with pytest.raises(gr.Error, match="needs the admin role"):
        ctx.require_admin(SimpleNamespace(username="ann"))
    with pytest.raises(gr.Error, match="not signed in"):
        ctx.user(SimpleNamespace(username=None))
    local = AppContext(studio=None, db=None, jobs=None, work_dir=tmp_path)
    assert local.require_admin(SimpleNamespace(username=None)).name == "local"


def test_app_main_bad_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert app.main(["--auth-file", str(tmp_path / "missing.json"), "--db", f"sqlite:///{tmp_path}/s.db"]) == 2
    assert "auth file not found" in capsys.readouterr().err
    assert app.main(["--model", "no-such-model", "--db", f"sqlite:///{tmp_path}/s.db"]) == 2
    assert "unknown model" in capsys.readouterr().err
