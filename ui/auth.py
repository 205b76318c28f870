"""Accounts from an auth file: bcrypt-hashed passwords and roles (annotator / admin).

File format (JSON)::

    {"users": {"alice": {"password_hash": "$2b$12$...", "role": "admin"},
               "bob":   {"password_hash": "$2b$12$...", "role": "annotator"}}}

`Accounts.check` is the callable given to `launch(auth=...)`; roles are enforced in the handlers
(ui.common.AppContext.require_admin). Without an auth file the app runs in single-user local mode.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from annotations.models import ROLES

NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD_CHARS = 8


class AuthFileError(ValueError):
    """The auth file is missing, unreadable or malformed; the message says which and where."""


@dataclass(frozen=True)
class Account:
    name: str
    password_hash: str
    role: str


class Accounts:
    """Users read once from an auth file. Thread-safe to read (immutable after load)."""

    def __init__(self, accounts: dict[str, Account]) -> None:
        if not accounts:
            raise AuthFileError("auth file has no users; add one with: python app.py --add-user NAME --role admin")
        self._accounts = dict(accounts)

    @classmethod
    def load(cls, path: str | Path) -> Accounts:
        return cls(read_auth_file(path))

    def check(self, username: str, password: str) -> bool:
        """launch(auth=...) callback: constant-time bcrypt check; unknown users still cost a hash."""
        account = self._accounts.get(username)
        hashed = account.password_hash if account else _DUMMY_HASH
        try:
            ok = bcrypt.checkpw(password.encode(), hashed.encode())
        except ValueError:  # malformed hash in the file
            return False
        return ok and account is not None

    def role(self, username: str) -> str:
        account = self._accounts.get(username)
        return account.role if account else "annotator"

    def names(self) -> list[str]:
        return sorted(self._accounts)


_DUMMY_HASH = bcrypt.hashpw(b"not-a-user", bcrypt.gensalt(rounds=4)).decode()


def read_auth_file(path: str | Path) -> dict[str, Account]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AuthFileError(f"auth file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise AuthFileError(f"cannot read auth file {path}: {exc}") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict):
        raise AuthFileError(f'auth file {path} needs a "users" object: {{"name": {{"password_hash", "role"}}}}')
    return {name: _account(path, name, entry) for name, entry in users.items()}


def _account(path: Path, name: str, entry: object) -> Account:
    if not isinstance(entry, dict) or not isinstance(entry.get("password_hash"), str):
        raise AuthFileError(f"auth file {path}: user {name!r} needs a password_hash string")
    role = entry.get("role", "annotator")
    if role not in ROLES:
        raise AuthFileError(f"auth file {path}: user {name!r} has role {role!r}; use one of {', '.join(ROLES)}")
    return Account(name, entry["password_hash"], role)


def hash_password(password: str, rounds: int = 12) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def add_user(path: str | Path, name: str, password: str, role: str = "annotator", rounds: int = 12) -> None:
    """Add or replace a user in the auth file (created if missing; written atomically, mode 0600)."""
    if not NAME_RE.match(name):
        raise AuthFileError(f"user name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    if role not in ROLES:
        raise AuthFileError(f"role {role!r}: use one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_CHARS:
        raise AuthFileError(f"password is too short; use at least {MIN_PASSWORD_CHARS} characters")
    path = Path(path)
    users = {n: {"password_hash": a.password_hash, "role": a.role} for n, a in _existing(path).items()}
    users[name] = {"password_hash": hash_password(password, rounds), "role": role}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"users": users}, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def _existing(path: Path) -> dict[str, Account]:
    return read_auth_file(path) if path.exists() else {}
