"""Shared pieces of the UI: the app context, who is asking, error handling, model pickers, media staging.

Nothing here imports torch: the heavy work goes through `engine.service.Studio` (which loads models
lazily), training runs through `training.jobs.Jobs` (torch-free), data through `annotations`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import gradio as gr
from sqlalchemy import Engine

from annotations.errors import DISK_FULL_MESSAGE, StoreError, is_disk_full
from engine import paths
from engine.errors import StudioError, VideoError
from engine.presets import RANDOM_WEIGHTS_LABEL
from training.jobs import JobError, Jobs
from ui.auth import Accounts
from ui.mining import MiningJobs

if TYPE_CHECKING:  # type-only: the Studio's module may pull model code
    from engine.service import Studio

log = logging.getLogger("vidprompter.ui")

LOCAL_USER = "local"
REPO_ROOT = paths.DATA_ROOT
ASSETS_DIR = paths.ASSETS_DIR
SAMPLES_DIR = paths.SAMPLES_DIR
CONFIGS_DIR = paths.CONFIGS_DIR

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class User:
    """Who is calling a handler: from gr.Request.username (auth mode) or the single local user."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass
class AppContext:
    """Everything the handlers share. Built once by app.py; per-user data lives in gr.State."""

    studio: Studio
    """The only door to models."""
    db: Engine
    """SQLAlchemy engine of the annotation store (annotations.db.open_db)."""
    jobs: Jobs
    """Training runs of the same store (built by app.py on `db` and its URL)."""
    accounts: Accounts | None = None
    """None for single-user local mode (user "local", admin)."""
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vidprompter-ui-")))
    """Generated media and exports (inside the temp dir, which Gradio may serve back)."""
    upload_dir: Path | None = None
    """Where videos sent to the labelling queue are kept (they outlive Gradio's upload cache)."""
    media_root: Path | None = None
    """The admin's media folder (`--media-root`): relative clip paths of imported rows resolve against it."""
    mining: MiningJobs | None = None
    """The Admin tab's mining process (off Gradio's request queue); by default one on the jobs' database."""

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.upload_dir is None:
            self.upload_dir = self.work_dir / "uploads"
        if self.mining is None:
            self.mining = MiningJobs(getattr(self.jobs, "db_url", None), self.work_dir / "mining")

    @property
    def local_mode(self) -> bool:
        return self.accounts is None

    def user(self, request: gr.Request | None) -> User:
        """The caller. Raises gr.Error when auth is on and the request carries no user."""
        name = getattr(request, "username", None) if request is not None else None
        if self.accounts is None:
            return User(name or LOCAL_USER, "admin")
        if not name:
            raise gr.Error("not signed in")
        return User(name, self.accounts.role(name))

    def caller(self, request: gr.Request | None) -> User | None:
        """The caller, or None when auth is on and the request carries no user (never raises)."""
        try:
            return self.user(request)
        except gr.Error:
            return None

    def require_admin(self, request: gr.Request | None) -> User:
        user = self.user(request)
        if not user.is_admin:
            raise gr.Error(f"user {user.name!r} has role {user.role!r}; this action needs the admin role")
        return user


USER_ERRORS: tuple[type[BaseException], ...] = (StudioError, StoreError, JobError, ValueError)
#: What an annotator sees instead of an unexpected exception's text (admins see the text; the log has it all).
INTERNAL_ERROR = "internal error in {fn}; an admin can find the details in the app's log"


def guard(fn: Callable[P, R], ctx: Any = None) -> Callable[P, R]:
    """Turn every failure of a handler into a gr.Error with a one-line message: the app never crashes.

    StudioError / StoreError / JobError / ValueError are the user's to fix and are shown (and logged as one
    line, no traceback); anything else is logged with its traceback and shown as an internal error. With
    `ctx`, the caller's role (from the handler's gr.Request) decides how much: admins see the whole line,
    everyone else a line with no server paths and no decoder internals (`public_message`). An admin's call
    also runs inside `ctx.studio.admin_access()`, the only way a model folder not loaded before may load.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        # No AppContext (a bare guard, a test's stand-in): nobody to tell apart, everything is shown.
        caller = ctx.caller(_request_in(args, kwargs)) if isinstance(ctx, AppContext) else None
        admin = not isinstance(ctx, AppContext) or (caller is not None and caller.is_admin)
        try:
            with _admin_scope(ctx, admin):
                return fn(*args, **kwargs)
        except gr.Error as exc:
            exc.print_exception = False  # Gradio would print a traceback per request (issue 24 item 2)
            _refused(fn, exc.message)
            if admin or public_text(exc.message) == exc.message:
                raise
            raise gr.Error(public_text(exc.message), print_exception=False) from exc
        except USER_ERRORS as exc:
            _refused(fn, one_line(exc))
            raise gr.Error(one_line(exc) if admin else public_message(exc), print_exception=False) from exc
        except Exception as exc:
            if is_disk_full(exc):  # any write of any handler (issue 24 item 4): one line, never "internal error"
                raise gr.Error(DISK_FULL_MESSAGE, print_exception=False) from exc
            log.exception("handler %s failed", fn.__name__)  # one line per distinct error a minute: app.ErrorThrottle
            if not admin:
                raise gr.Error(INTERNAL_ERROR.format(fn=fn.__name__), print_exception=False) from exc
            message = f"internal error in {fn.__name__}: {type(exc).__name__}: {one_line(exc)}"
            raise gr.Error(message, print_exception=False) from exc

    return wrapper


def _refused(fn: Callable[..., Any], message: object) -> None:
    """An expected refusal (bad input, a model that cannot load, a busy device): one log line, no traceback."""
    log.warning("%s refused: %s", getattr(fn, "__name__", "handler"), " ".join(str(message).split())[:300])


def _admin_scope(ctx: Any, admin: bool) -> contextlib.AbstractContextManager[Any]:
    """The Studio's admin access for an admin's call (a context without a Studio, e.g. a test, has none)."""
    studio = getattr(ctx, "studio", None)
    return studio.admin_access() if admin and studio is not None else contextlib.nullcontext()


def _request_in(args: tuple[Any, ...], kwargs: dict[str, Any]) -> gr.Request | None:
    """The gr.Request Gradio injected into a handler's arguments, if any."""
    return next((v for v in (*args, *kwargs.values()) if isinstance(v, gr.Request)), None)


# An absolute path: starts after a space, quote, bracket, colon or '=' (or the line start), runs to a space/quote.
_PATH = re.compile(r"""(?:(?<=^)|(?<=[\s'"(\[:=]))(?:~|/)[^\s'"()\[\],;]*""")
# A decoder's own words: a parenthesised tail, "[Errno 1094995529]", "Invalid data found ...".
_PARENS = re.compile(r"\s*\([^()]*\)")


def public_text(text: str) -> str:
    """`text` with every absolute path cut to its last part (the user's own file name, or nothing)."""
    return _PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def public_message(exc: BaseException) -> str:
    """The one line a non-admin sees: no server paths; a video error without the decoder's reason."""
    text = one_line(exc)
    if isinstance(exc, VideoError):
        text = _PARENS.sub("", text)
    return public_text(text)


def set_signature(fn: Callable[..., Any], signature: inspect.Signature) -> None:
    """Give a wrapper the signature Gradio should read (inspect.signature honours ``__signature__``)."""
    fn.__signature__ = signature  # type: ignore[attr-defined]  # typeshed declares no __signature__ on functions


def bind(fn: Callable[..., Any], ctx: AppContext, *fixed: Any) -> Callable[..., Any]:
    """`fn(ctx, *fixed, ...)` as a guarded Gradio handler whose visible signature drops ctx and `fixed`.

    Gradio injects gr.Request by the type hint of a parameter, so the hints (minus the bound ones)
    must survive the wrapping; lambdas would lose them.
    """
    params = list(inspect.signature(fn).parameters.values())
    dropped = {p.name for p in params[: 1 + len(fixed)]}

    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return fn(ctx, *fixed, *args, **kwargs)

    set_signature(bound, inspect.signature(fn).replace(parameters=params[1 + len(fixed) :]))
    bound.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k not in dropped}
    return guard(bound, ctx)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] or type(exc).__name__


# -- per-session state of a signed-in user --------------------------------------------------------

#: The key of a session state (gr.State dict) that names the user it was made for.
OWNER_KEY = "owner"


def owned(state: dict[str, Any], user: User) -> dict[str, Any]:
    """`state` stamped with the user it belongs to (what `check_owner` compares against)."""
    return {**state, OWNER_KEY: user.name}


def check_owner(state: dict[str, Any] | None, user: User) -> None:
    """A gr.Error unless a non-empty `state` was made for `user`: a session hash someone else holds
    (gr.State is keyed by it) gives them nothing to act on."""
    if state and state.get(OWNER_KEY) != user.name:
        raise gr.Error("this screen belongs to another signed-in session; press Next pair")


# -- models -------------------------------------------------------------------------------------


def model_choices(studio: Studio, video_only: bool) -> list[str]:
    """Preset names for a picker: video models for Tasks 1-2, every model for Task 3."""
    return [p.name for p in studio.presets() if p.kind == "video" or not video_only]


def is_random_model(studio: Studio, name: str) -> bool:
    return any(p.name == name and p.random_weights for p in studio.presets())


def model_note(studio: Studio, name: str | None) -> str:
    """One markdown line on whether `name` can load, and why not. Never loads weights.

    Random-weight presets are labelled without asking the Studio (that would build the tiny model,
    which imports torch, at page load).
    """
    if not name:
        return ""
    if is_random_model(studio, name):
        return f"⚠️ **{name}**: {RANDOM_WEIGHTS_LABEL}. Its output is not a model's answer."
    ok, message = studio.model_status(name)
    if ok:
        return f"✅ **{name}**: {message} (loads on first use)."
    return f"⛔ **{name}** cannot load here: {message}"


# -- media --------------------------------------------------------------------------------------


def stage_media(path: str | Path | None, work_dir: Path) -> str | None:
    """A path Gradio may serve: files outside the cwd and the temp dir are copied into work_dir/media.

    Gradio refuses to return files from elsewhere (and we keep allowed_paths minimal), so videos
    imported from a dataset folder are staged once per content.
    """
    if not path or not Path(path).is_file():
        return None
    src = Path(path).resolve()
    if _inside(src, Path.cwd()) or _inside(src, Path(tempfile.gettempdir())):
        return str(src)
    digest = hashlib.sha256(f"{src}:{src.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    dest = work_dir / "media" / f"{digest}{src.suffix}"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return str(dest)


def sweep(folder: Path, max_age_s: float) -> int:
    """Delete files under `folder` last modified over `max_age_s` ago, then the folders left empty;
    returns how many files went. Per-request outputs (viewer videos) are not kept for good."""
    if not folder.is_dir():
        return 0
    cutoff, removed = time.time() - max_age_s, 0
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # children first
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        except OSError:  # another request is using or removing it: next sweep
            continue
    return removed


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root.resolve())
    except ValueError:
        return False
    return True


def config_presets() -> list[str]:
    """Training config presets shipped in configs/ (names without .yaml)."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def on_model_event(event, handler, ins: list, outs: list, **kwargs) -> None:
    """Wire an event that runs a model: one at a time across all tabs (CPU inference, shared models)."""
    event(handler, ins, outs, concurrency_limit=1, concurrency_id="models", **kwargs)


def afterwards(event: Any, handler: Callable[..., Any], ins: Any, outs: Any, **kwargs: Any) -> Any:
    """`event.then(handler, ...)` that also runs when `event` failed: Gradio 6's page runs `.then` steps only
    after a success (an error dispatches `.failure` steps alone), so a "back to idle" step chained with `.then`
    never ran after an error and left Run at "Running…" (issue 25 item 4). Returns the success step, for
    chaining what only makes sense after a success."""
    event.failure(handler, ins, outs, **kwargs)
    return event.success(handler, ins, outs, **kwargs)
