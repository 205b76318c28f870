"""Accounts from an auth file: bcrypt-hashed passwords and roles (annotator / admin), and sign-in that
cannot be used to starve the app.

File format (JSON)::

    {"users": {"alice": {"password_hash": "$2b$12$...", "role": "admin"},
               "bob":   {"password_hash": "$2b$12$...", "role": "annotator"}}}

`Accounts.check_async` is the callable given to `launch(auth=...)`. Gradio 6 (gradio/routes.py,
`POST /login`) awaits an async auth callable on its event loop and calls a sync one right there, on the
loop, so a 0.3-0.6 s bcrypt check blocked every other request. Here each check runs on a small thread
pool (bcrypt releases the GIL), at most `max_waiting` checks wait for it (more get HTTP 503 at once),
an unknown user costs the same bcrypt work as a known one (the decoy hash has the accounts' cost), and
`LoginThrottle` backs off per (user, client address) and per client address after repeated failures
(HTTP 429, no bcrypt at all): failures from one address never lock the account's owner out elsewhere.
The client address comes from `SignInGuard` (Gradio passes the auth callable no request). Roles are
enforced in the handlers (ui.common.AppContext.require_admin).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from annotations.files import acquire_lock, atomic_write
from annotations.models import ROLES

NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD_CHARS = 8
#: bcrypt reads at most 72 bytes of a password (bcrypt 5 refuses longer ones).
MAX_PASSWORD_BYTES = 72
BCRYPT_ROUNDS = 12
#: Shown on the login page: Gradio's form only ever says "Incorrect credentials" on a refusal.
LOGIN_NOTE = (
    "VidPrompter Studio: sign in with your annotator or admin account. After {n} failed sign-ins for an "
    "account from one address (or {n_addr} from one address), each further try from there must wait longer "
    "(up to {cap} min)."
)

#: The client address of the HTTP request being served (set by SignInGuard).
CLIENT_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar("vidprompter_client", default=None)


class AuthFileError(ValueError):
    """The auth file is missing, unreadable or malformed; the message says which and where."""


class SignInRefused(Exception):
    """A sign-in turned away before any password check: `status` 429 (back-off) or 503 (busy)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Account:
    name: str
    password_hash: str
    role: str


# -- back-off -----------------------------------------------------------------------------------


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


@dataclass
class LoginThrottle:
    """Exponential back-off per key: "user:NAME@IP" (one account from one address) and "addr:IP" (everything
    from one address). After `free_failures` failures in a row (`address_free_failures` for an address key)
    the next try must wait base_s * 2**(extra failures), capped at cap_s. A success clears its account's key
    from that address; keys idle for `forget_s` are dropped. Thread-safe.

    There is no key per account alone: with one, anyone could lock any account out, the admin's included, by
    failing ~10 times for its name from anywhere (issue 24 item 7). An attacker's failures slow that
    attacker's address; the owner signing in from their own address is never kept waiting by them."""

    free_failures: int = 5
    """Failures for one account from one address before any wait."""
    address_free_failures: int = 20
    """Failures from one address, over all names, before any wait (an office behind one NAT shares it)."""
    base_s: float = 1.0
    """Wait after the first failure beyond the free ones."""
    cap_s: float = 300.0
    """Longest wait."""
    forget_s: float = 3600.0
    """A key with no failure for this long starts over."""
    clock: Any = time.monotonic
    _keys: dict[str, _Failures] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_s(self, keys: list[str]) -> float:
        """Seconds until `keys` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            return max((self._wait_locked(k, now) for k in keys), default=0.0)

    def _wait_locked(self, key: str, now: float) -> float:
        entry = self._keys.get(key)
        if entry is None or now - entry.last > self.forget_s:
            return 0.0
        extra = entry.count - (self.address_free_failures if key.startswith("addr:") else self.free_failures)
        if extra < 0:
            return 0.0
        return max(0.0, entry.last + min(self.cap_s, self.base_s * 2.0**extra) - now)

    def failed(self, keys: list[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                entry = self._keys.setdefault(key, _Failures())
                if now - entry.last > self.forget_s:
                    entry.count = 0
                entry.count, entry.last = entry.count + 1, now
            if len(self._keys) > 100_000:  # a spray of names: keep memory bounded
                self._keys = {k: v for k, v in self._keys.items() if now - v.last <= self.forget_s}

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)


# -- accounts -----------------------------------------------------------------------------------


class Accounts:
    """Users read once from an auth file (immutable after load), plus the sign-in machinery."""

    def __init__(
        self,
        accounts: dict[str, Account],
        throttle: LoginThrottle | None = None,
        workers: int = 1,
        max_waiting: int = 32,
        refusal_delay_s: float = 1.0,
    ) -> None:
        """workers: bcrypt checks at a time (1 leaves the other cores to the app); max_waiting: checks
        that may queue for them before new sign-ins get 503; refusal_delay_s: how long a refused sign-in
        waits (asleep, costing nothing) before its answer, so a client that keeps one try in flight makes
        at most one a second instead of hundreds."""
        if not accounts:
            raise AuthFileError("auth file has no users; add one with: python app.py --add-user NAME --role admin")
        self._accounts = dict(accounts)
        self.throttle = throttle or LoginThrottle()
        self._decoy = _decoy_hash(self._accounts.values())
        self._workers, self._max_waiting, self._waiting = workers, max_waiting, 0
        self.refusal_delay_s = refusal_delay_s
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> Accounts:
        return cls(read_auth_file(path), **kwargs)

    def check(self, username: str, password: str) -> bool:
        """Constant-work bcrypt check: an unknown user is checked against a decoy of the same cost."""
        account = self._accounts.get(username)
        hashed = account.password_hash if account else self._decoy
        secret = password.encode()
        if len(secret) > MAX_PASSWORD_BYTES:  # refused the same way for every user, before any hash
            return False
        try:
            ok = bcrypt.checkpw(secret, hashed.encode())
        except ValueError:  # malformed hash in the file
            return False
        return ok and account is not None

    async def check_async(self, username: str, password: str) -> bool:
        """launch(auth=...) callback: back-off first, then the check on the bounded pool (off the loop).

        Raises starlette's HTTPException 429 / 503 (Gradio's /login returns it as it is)."""
        from starlette.exceptions import HTTPException

        try:
            return await self.authenticate(username, password, CLIENT_ADDRESS.get())
        except SignInRefused as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None

    def refusal(self, keys: list[str]) -> SignInRefused | None:
        """Why a sign-in for `keys` is turned away before any password check, or None."""
        wait = self.throttle.wait_s(keys)
        if wait > 0:
            return SignInRefused(429, f"too many failed sign-ins; try again in {max(1, round(wait))} s")
        if self._waiting >= self._max_waiting:
            return SignInRefused(503, "sign-in is busy; try again in a few seconds")
        return None

    async def authenticate(self, username: str, password: str, address: str | None) -> bool:
        """True / False for the credentials, or SignInRefused (back-off, or too many checks queued)."""
        keys = sign_in_keys(username, address)
        refused = self.refusal(keys)
        if refused is not None:
            await asyncio.sleep(self.refusal_delay_s)
            raise refused
        self._waiting += 1  # the event loop's thread is the only writer: no lock needed
        try:
            ok = await asyncio.get_running_loop().run_in_executor(self._executor(), self.check, username, password)
        finally:
            self._waiting -= 1
        if ok:
            self.throttle.succeeded(keys[0])
        else:
            self.throttle.failed(keys)
        return ok

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="bcrypt")
            return self._pool

    def login_note(self) -> str:
        throttle = self.throttle
        return LOGIN_NOTE.format(
            n=throttle.free_failures, n_addr=throttle.address_free_failures, cap=round(throttle.cap_s / 60)
        )

    def role(self, username: str) -> str:
        account = self._accounts.get(username)
        return account.role if account else "annotator"

    def names(self) -> list[str]:
        return sorted(self._accounts)


def sign_in_keys(username: str, address: str | None) -> list[str]:
    """The throttle's keys for a sign-in: the (account, address) pair first (a success clears it), then the
    address alone. Without an address (no SignInGuard) the account's key stands for both."""
    return [f"user:{username}@{address or '?'}"] + ([f"addr:{address}"] if address else [])


def hash_cost(password_hash: str) -> int | None:
    """The cost (log2 rounds) of a "$2b$12$..." hash, or None when it is not one."""
    match = re.match(r"^\$2[abxy]?\$(\d\d)\$", password_hash)
    return int(match.group(1)) if match else None


def _decoy_hash(accounts: Any) -> str:
    """A hash nobody's password matches, at the cost most accounts use: an unknown user's check costs
    what a known user's does (issue 13: 4 rounds vs 12 told them apart in ~7 ms vs ~300-600 ms)."""
    costs = Counter(c for a in accounts if (c := hash_cost(a.password_hash)) is not None)
    rounds = costs.most_common(1)[0][0] if costs else BCRYPT_ROUNDS
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=rounds)).decode()


class SignInGuard:
    """Pure ASGI middleware: exposes each HTTP request's client address in CLIENT_ADDRESS, so the auth
    callable (which Gradio calls with only a user name and a password) can back off per address; and,
    given the Accounts, answers `POST /login` from a backed-off address, or while the bcrypt queue is
    full, itself (after `refusal_delay_s`), before Gradio parses the form.

    The address is the TCP peer; put the app behind a proxy only with uvicorn's --forwarded-allow-ips
    set, or every user shares the proxy's address."""

    def __init__(self, app: Any, accounts: Accounts | None = None) -> None:
        self.app = app
        self.accounts = accounts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else None
        if self.accounts is not None and scope.get("method") == "POST" and scope.get("path") in LOGIN_PATHS:
            refused = self.accounts.refusal([f"addr:{address}"] if address else [])
            if refused is not None:
                await asyncio.sleep(self.accounts.refusal_delay_s)
                await _send_json(send, refused.status, {"detail": str(refused)})
                return
        token = CLIENT_ADDRESS.set(address)
        try:
            await self.app(scope, receive, send)
        finally:
            CLIENT_ADDRESS.reset(token)


LOGIN_PATHS = ("/login", "/login/")
LOGOUT_PATHS = ("/logout", "/logout/")
#: What GET /logout shows: a button that signs out with a same-origin POST (a GET changes nothing).
LOGOUT_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Sign out</title></head><body style='font-family:"
    "sans-serif;margin:3em'><p>Sign out of VidPrompter Studio in this browser?</p><form method='post' "
    "action='logout'><button type='submit'>Sign out</button></form><p><a href='./'>Back to the app</a></p>"
    "</body></html>"
)


class LogoutGuard:
    """Pure ASGI middleware: sign-out is a same-origin POST (issue 24 item 13).

    Gradio's own route is `GET /logout`, which ends every session of the signed-in user, so any page on the web
    could sign our users out with an <img src=".../logout">. Here `GET /logout` only shows a button; `POST
    /logout` whose Origin (or, without one, Referer) is this app's own host is passed to Gradio's route as a GET
    that ends this browser's session only (`all_session=false`); any other POST gets 403. Behind a proxy, keep
    the Host header (the origin is compared with it)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("path") not in LOGOUT_PATHS:
            await self.app(scope, receive, send)
            return
        method = scope.get("method")
        if method in ("GET", "HEAD"):
            await _send_body(send, 200, LOGOUT_PAGE.encode(), b"text/html; charset=utf-8")
            return
        if method != "POST":
            await _send_json(send, 405, {"detail": "sign out with a POST from the app's own page"})
            return
        headers = dict(scope.get("headers") or [])
        if not same_origin(headers):
            await _send_json(send, 403, {"detail": "sign-out must come from this app's own page"})
            return
        query = b"all_session=true" if b"all_session=true" in scope.get("query_string", b"") else b"all_session=false"
        if query == b"all_session=false":
            _forget_session(scope.get("app"), headers)
        await self.app({**scope, "method": "GET", "query_string": query}, receive, send)


def _forget_session(app: Any, headers: dict[bytes, bytes]) -> None:
    """Drop this browser's session tokens from Gradio's token table. Gradio's own single-session logout only
    looks at its `access-token-<id>` cookie, but over plain HTTP the session lives in `access-token-unsecure-<id>`:
    that sign-out left the session valid."""
    from http.cookies import SimpleCookie

    tokens = getattr(app, "tokens", None)
    if not isinstance(tokens, dict):
        return
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # noqa: BLE001 - a malformed Cookie header: nothing of ours to forget
        return
    for name, morsel in jar.items():
        if name.startswith("access-token"):
            tokens.pop(morsel.value, None)


def same_origin(headers: dict[bytes, bytes]) -> bool:
    """Whether a request's Origin (else its Referer) names the host it was sent to (the Host header)."""
    import urllib.parse

    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    source = headers.get(b"origin") or headers.get(b"referer") or b""
    netloc = urllib.parse.urlsplit(source.decode("latin-1").strip()).netloc.lower()
    return bool(host) and netloc == host


async def _send_json(send: Any, status: int, payload: dict[str, Any]) -> None:
    await _send_body(send, status, json.dumps(payload).encode(), b"application/json")


async def _send_body(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- the file -----------------------------------------------------------------------------------


def read_auth_file(path: str | Path) -> dict[str, Account]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AuthFileError(f"auth file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise AuthFileError(f"cannot read auth file {path}: {' '.join(str(exc).split())}") from None
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


def check_password(password: str) -> bytes:
    """The password's bytes, or one line saying what is wrong with it."""
    if any(c in password for c in "\r\n\0"):
        raise AuthFileError("password contains a line break or NUL character; type it on one line")
    if len(password) < MIN_PASSWORD_CHARS:
        raise AuthFileError(f"password is too short; use at least {MIN_PASSWORD_CHARS} characters")
    secret = password.encode()
    if len(secret) > MAX_PASSWORD_BYTES:
        raise AuthFileError(
            f"password is {len(secret)} bytes; bcrypt uses at most {MAX_PASSWORD_BYTES}: choose a shorter one"
        )
    return secret


def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    return bcrypt.hashpw(check_password(password), bcrypt.gensalt(rounds=rounds)).decode()


def add_user(path: str | Path, name: str, password: str, role: str = "annotator", rounds: int = BCRYPT_ROUNDS) -> None:
    """Add or replace a user in the auth file (created if missing).

    Safe to run many at once: the read-modify-write holds an exclusive flock on `<file>.lock`, and the
    new content goes to a fresh, uniquely named temp file created with O_EXCL | O_NOFOLLOW at mode
    0600 (never an existing file or a symlink someone left there), fsynced, then renamed over the file.
    """
    if not NAME_RE.match(name):
        raise AuthFileError(f"user name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    if role not in ROLES:
        raise AuthFileError(f"role {role!r}: use one of {', '.join(ROLES)}")
    password_hash = hash_password(password, rounds)  # before the lock: 0.3 s of CPU nobody waits on
    path = Path(path)
    _make_parent(path)
    with _locked(path):
        users = {n: {"password_hash": a.password_hash, "role": a.role} for n, a in _existing(path).items()}
        users[name] = {"password_hash": password_hash, "role": role}
        _write_private(path, json.dumps({"users": users}, indent=2, sort_keys=True) + "\n")


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AuthFileError(f"cannot create the folder of {path}: {exc.strerror}") from None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `<file>.lock` (created 0600, never through a symlink: annotations.files)."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = acquire_lock(lock_path)
    except OSError as exc:
        raise AuthFileError(f"cannot open lock file {lock_path}: {_why(exc)}") from None
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a new 0600 temp file beside `path` (annotations.files.atomic_write), renamed over `path`."""
    try:
        atomic_write(path, text, mode=0o600)
    except OSError as exc:
        raise AuthFileError(f"cannot write auth file {path}: {_why(exc)}") from None


def _why(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return "it is a symbolic link; remove it"
    if exc.errno == errno.EEXIST:
        return "it already exists; remove it"
    return exc.strerror or type(exc).__name__


def _existing(path: Path) -> dict[str, Account]:
    return read_auth_file(path) if path.exists() else {}


def leftover_temp_files(path: str | Path) -> list[Path]:
    """Temp files an interrupted (or older) add-user left beside the auth file: `auth.json.tmp`, `.auth.json.*.tmp`."""
    path = Path(path)
    legacy = path.with_name(path.name + ".tmp")
    found = [legacy] if legacy.is_symlink() or legacy.exists() else []
    return found + sorted(path.parent.glob(f".{path.name}.*.tmp"))
