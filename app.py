"""Start VidPrompter Studio: `python app.py [--host H] [--port P] [--db URL] [--auth-file PATH] [--model NAME]
[--model-root DIR ...] [--max-models N] [--max-upload-mb MB]`.

Builds the Studio facade (models load lazily, so the page is up in seconds), the annotation
database engine (recording the task instructions its exports build prompts from) and the training
jobs object on it, lays out the UI and launches it. Without --auth-file the app runs in single-user
local mode (user "local", admin). Add accounts with:

    python app.py --add-user alice --role admin --auth-file auth.json   # password from stdin or
                                                                        # $VIDPROMPTER_PASSWORD

Model pickers take the presets, and checkpoint folders only under a --model-root (or
$VIDPROMPTER_MODEL_ROOTS); a folder nobody loaded before loads only for an admin. SIGTERM / Ctrl-C stop
the server within SHUTDOWN_GRACE_S seconds; training runs are their own processes and keep going (a
restarted app watches, cancels and resumes them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotations.files import acquire_lock  # stdlib only: `--add-user` stays light

if TYPE_CHECKING:  # imported inside the functions: `--add-user` needs neither gradio nor the engine
    import gradio as gr

    from engine.service import StudioConfig

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # else it calls api.gradio.app at start

PASSWORD_ENV = "VIDPROMPTER_PASSWORD"
#: After SIGTERM / SIGINT the process is gone within this many seconds, whatever a handler is doing.
SHUTDOWN_GRACE_S = 4.0
#: Gradio's upload cache and our per-request viewer outputs: swept every SWEEP_S of files older than MAX_AGE_S.
CACHE_SWEEP_S, CACHE_MAX_AGE_S = 600, 3600
#: The app's own folder in the temp dir (generated media, exports), one per process, locked while it runs.
WORK_PREFIX = "vidprompter-ui-"
#: Sub-folders of it that hold per-request outputs (swept of files older than CACHE_MAX_AGE_S).
SWEPT_WORK_FOLDERS = ("viewer", "exports")
#: The handlers that generate (ui.tasks, ui.budgets, ui.task_tabs), by name: they take fair turns in the Studio
#: (engine.turns) instead of queueing in Gradio's one-at-a-time "models" group, which served one user's whole
#: backlog before anyone else's call (issue 24 item 6).
GENERATION_HANDLERS = frozenset(
    {
        "beautify",
        "describe_video",
        "describe_video_with_caption",
        "stream_beautify",
        "stream_beautify_in_budget",
        "stream_describe",
        "_stream_task1",
    }
)
#: Generation calls let past Gradio's queue at once; they wait in the Studio's fair queue, told their place.
GENERATION_CONCURRENCY = 16
#: Longest text any input of any event takes (characters), unless its Textbox sets a `max_length` of its own.
MAX_TEXT_CHARS = 20_000
#: Largest JSON body of an event call (files go through /gradio_api/upload, bounded by --max-upload-mb).
MAX_EVENT_BODY_BYTES = 1 << 20
#: The routes that run an event with the inputs in their JSON body.
EVENT_PATHS = re.compile(r"^/gradio_api/(?:queue/join|(?:run|api|call|call/v2)/(?P<api_name>[^/]+))/?$")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from engine.configfile import add_flag  # stdlib + PyYAML: the flags of StudioConfig fields, its defaults
    from engine.service import StudioConfig  # no torch at import

    parser = argparse.ArgumentParser(prog="app.py", description="VidPrompter Studio (Gradio app)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for a LAN)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument(
        "--db",
        default=None,
        help="SQLAlchemy URL of the annotation store (default $VIDPROMPTER_DB or sqlite:///data/studio.db)",
    )
    parser.add_argument(
        "--auth-file", default=None, help="JSON accounts file (bcrypt hashes, roles); omit for single-user local mode"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="default model: a text preset sets Task 3's, a video preset Tasks 1-2's (e.g. tiny-random-vlm)",
    )
    parser.add_argument(
        "--model-root",
        action="append",
        default=None,
        metavar="DIR",
        help="folder whose checkpoint sub-folders the model pickers may load (repeatable; default "
        "$VIDPROMPTER_MODEL_ROOTS, os.pathsep-separated); presets are always allowed",
    )
    add_flag(parser, StudioConfig, "max_models")
    add_flag(parser, StudioConfig, "t2v_offload", choices=["none", "model", "sequential"])
    add_flag(parser, StudioConfig, "num_frames")
    add_flag(parser, StudioConfig, "device")
    add_flag(parser, StudioConfig, "trim_after_call")
    parser.add_argument("--max-upload-mb", type=int, default=100, help="largest upload accepted, in MB")
    parser.add_argument(
        "--generation-time-limit",
        type=float,
        default=120.0,
        metavar="S",
        help="longest one generation may hold the model, in seconds; then it is stopped (fair model time)",
    )
    parser.add_argument(
        "--max-token-rows",
        type=int,
        default=2048,
        help="most beams (or candidates) x max new tokens one generation may ask for",
    )
    parser.add_argument(
        "--media-root",
        metavar="DIR",
        help="folder the Data tab's imports resolve relative clip paths against (clips must lie inside it)",
    )
    parser.add_argument("--add-user", metavar="NAME", help="add or replace a user in --auth-file, then exit")
    parser.add_argument("--role", default="annotator", choices=["annotator", "admin"], help="role for --add-user")
    return parser.parse_args(argv)


def add_user_command(args: argparse.Namespace) -> int:
    """Add a user; safe to run many at once (ui.auth.add_user locks the file). One line per failure."""
    from ui.auth import AuthFileError, add_user, leftover_temp_files

    if not args.auth_file:
        print("error: --add-user needs --auth-file PATH", file=sys.stderr)
        return 2
    password = os.environ.get(PASSWORD_ENV) or _read_password()
    try:
        add_user(args.auth_file, args.add_user, password, args.role)
    except AuthFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for leftover in leftover_temp_files(args.auth_file):  # never read or followed; just say so
        print(f"note: {leftover} is a leftover temp file (not used); delete it", file=sys.stderr)
    print(f"user {args.add_user!r} ({args.role}) written to {args.auth_file}")
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\r\n")  # a password piped from a Windows file ends in \r\n


def studio_config(model: str | None, model_roots: Sequence[str] = (), **fields: Any) -> StudioConfig:
    """StudioConfig with --model applied to the task family its preset serves; folders confined to the roots;
    `fields`: other StudioConfig fields (max_models, t2v_offload, num_frames, device, trim_after_call), else
    its defaults."""
    from functools import partial

    from engine.models import resolve
    from engine.service import StudioConfig

    confined = partial(StudioConfig, model_roots=tuple(model_roots), **fields)
    if not model:
        return confined()
    kind = resolve(model).kind  # ModelLoadError for an unknown name: reported by main()
    return confined(video_model=model) if kind == "video" else confined(text_model=model)


def build(args: argparse.Namespace) -> tuple[gr.Blocks, dict[str, Any]]:
    """(Blocks, launch kwargs) from parsed flags. Raises StudioError / StoreError / AuthFileError."""
    from starlette.middleware import Middleware

    from annotations.db import default_db_url, open_db
    from engine.models import env_model_roots
    from engine.service import Studio
    from training.jobs import Jobs
    from ui import AppContext, build_app, launch_kwargs
    from ui.auth import Accounts, LogoutGuard, SignInGuard
    from ui.common import SAMPLES_DIR

    install_log_throttle()
    db_url = args.db or default_db_url()
    accounts = Accounts.load(args.auth_file) if args.auth_file else None
    db = open_db(db_url)  # one engine for the whole app: handlers and training jobs share it
    _record_instructions(db)
    roots = args.model_root if args.model_root is not None else list(env_model_roots())
    fields = {k: getattr(args, k) for k in ("max_models", "t2v_offload", "num_frames", "device", "trim_after_call")}
    studio = Studio(studio_config(args.model, roots, **fields))
    upload_dir = _upload_dir(db_url)
    folders = launch_folders(args, upload_dir)
    work_dir, work_lock = make_work_dir()
    ctx = AppContext(studio=studio, db=db, jobs=Jobs(db, db_url, folders), accounts=accounts, work_dir=work_dir)
    ctx.upload_dir = upload_dir
    ctx.media_root = Path(args.media_root).resolve() if args.media_root else None
    demo = build_app(ctx)
    fair_generation(demo, studio, args.generation_time_limit, args.max_token_rows)
    demo.delete_cache = (CACHE_SWEEP_S, CACHE_MAX_AGE_S)  # Gradio's upload cache: never kept for good
    kwargs = launch_kwargs() | {
        "server_name": args.host,
        "server_port": args.port,
        "auth": accounts.check_async if accounts else None,  # awaited by /login: bcrypt runs off the loop
        "auth_message": accounts.login_note() if accounts else None,
        "allowed_paths": [str(SAMPLES_DIR)],  # only the sample clips; generated media lives in the temp dir
        "max_file_size": f"{args.max_upload_mb}mb",
        "app_kwargs": {
            # sign-in back-off per client address; refusals answered before Gradio parses the form
            "middleware": [
                Middleware(SignInGuard, accounts=accounts),
                Middleware(LogoutGuard),
                Middleware(InputBounds),
            ],
            "lifespan": _sweeper(ctx, work_lock),
        },
    }
    return demo, kwargs


class InputBounds:
    """Pure ASGI middleware: every event's inputs are bounded before Gradio parses them (issue 24 item 5: a
    5.4 MB text to /token_budget took 51 s, was echoed back, and four at once slowed everyone's votes 20x).

    A POST to an event route (EVENT_PATHS) may carry at most MAX_EVENT_BODY_BYTES of JSON, and each string
    in its inputs at most MAX_TEXT_CHARS characters (a Textbox's own `max_length` where it sets one). Beyond
    that: HTTP 413 for the body, HTTP 422 in Gradio's validation format for a text (the page marks the box;
    gradio_client raises ValidationError), each with one line saying the length and the limit."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = EVENT_PATHS.match(scope.get("path", "")) if scope.get("type") == "http" else None
        if match is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        from ui.auth import _send_json

        body = await _read_body(scope, receive, MAX_EVENT_BODY_BYTES)
        if body is None:
            limit = f"{MAX_EVENT_BODY_BYTES >> 20} MiB"
            detail = f"request is larger than {limit}; texts take at most {MAX_TEXT_CHARS:,} characters"
            await _send_json(send, 413, {"detail": detail})
            return
        problems = self._problems(scope, match.group("api_name"), body)
        if problems is not None:
            await _send_json(send, 422, {"detail": problems})
            return
        await self.app(scope, _replay(body, receive), send)

    def _problems(self, scope: dict[str, Any], api_name: str | None, body: bytes) -> list[dict[str, Any]] | None:
        """Gradio's validation records for the inputs, or None when every text is within its bound."""
        try:
            payload = json.loads(body)
        except ValueError:
            return None  # Gradio answers malformed JSON itself
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            return None
        fn = _event_fn(scope, api_name, payload.get("fn_index"))
        inputs = list(getattr(fn, "inputs", None) or [])
        names = _input_names(fn, len(data))
        records, bad = [], False
        for i, value in enumerate(data):
            bound = getattr(inputs[i], "max_length", None) if i < len(inputs) else None
            longest = _longest_text(value)
            limit = int(bound) if isinstance(bound, int) and bound > 0 else MAX_TEXT_CHARS
            if longest > limit:
                bad = True
                message = f"{names[i]} is {longest:,} characters; the limit is {limit:,}"
                records.append({"__type__": "validate", "is_valid": False, "message": message})
            else:
                records.append({"__type__": "validate", "is_valid": True, "message": ""})
            records[-1]["parameter_name"] = names[i]
        return records if bad else None


async def _read_body(scope: dict[str, Any], receive: Any, limit: int) -> bytes | None:
    """The request body, or None once it passes `limit` bytes (the rest is never read)."""
    headers = dict(scope.get("headers") or [])
    declared = headers.get(b"content-length", b"").decode("latin-1")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    """A `receive` that hands the app the body already read, then whatever the client sends next."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _event_fn(scope: dict[str, Any], api_name: str | None, fn_index: Any) -> Any:
    """The Gradio BlockFunction an event call names (by api_name or fn_index), or None."""
    app = scope.get("app")
    get_blocks = getattr(app, "get_blocks", None)
    blocks = get_blocks() if callable(get_blocks) else None
    fns = getattr(blocks, "fns", None) or {}
    if api_name is not None:
        return next((fn for fn in fns.values() if fn.api_name == api_name), None)
    return fns.get(fn_index) if isinstance(fn_index, int) else None


def _input_names(fn: Any, count: int) -> list[str]:
    import inspect

    names: list[str] = list(getattr(fn, "input_parameter_names", None) or [])
    if not names and getattr(fn, "fn", None) is not None:
        names = [n for n in inspect.signature(fn.fn).parameters if n != "request"]
    return [names[i] if i < len(names) else f"input {i + 1}" for i in range(count)]


def _longest_text(value: Any, depth: int = 0) -> int:
    """The longest string in an input value (strings inside lists and dicts too)."""
    if isinstance(value, str):
        return len(value)
    if depth > 8:
        return 0
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return max((_longest_text(v, depth + 1) for v in value), default=0)
    return 0


def fair_generation(demo: Any, studio: Any, time_limit_s: float = 120.0, max_token_rows: int = 2048) -> list[str]:
    """Fair model time in the app (issue 24 item 6): the Studio's turns get the app's bounds, and each generation
    handler (GENERATION_HANDLERS) leaves Gradio's "models" queue for its own group of GENERATION_CONCURRENCY
    and runs with the caller's identity and a notifier (`_generation_context`). Returns the handlers changed."""
    from engine.turns import ModelTurns, TurnsConfig

    studio.turns = ModelTurns(TurnsConfig(max_token_rows=max_token_rows, call_limit_s=time_limit_s))
    changed = []
    for fn in demo.fns.values():
        name = getattr(fn.fn, "__name__", "")
        if name in GENERATION_HANDLERS:
            fn.concurrency_id, fn.concurrency_limit = "generate", GENERATION_CONCURRENCY
            fn.fn = _with_caller(fn.fn)
            changed.append(fn.api_name or name)
    return changed


def _with_caller(handler: Callable[..., Any]) -> Callable[..., Any]:
    """`handler` run inside `_generation_context` (every step of a streaming one)."""
    import functools
    import inspect

    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def streamed(*args: Any, **kwargs: Any) -> Any:
            steps = handler(*args, **kwargs)
            try:
                while True:
                    with _generation_context():
                        try:
                            item = next(steps)
                        except StopIteration:
                            return
                    yield item
            finally:
                steps.close()

        return streamed

    @functools.wraps(handler)
    def plain(*args: Any, **kwargs: Any) -> Any:
        with _generation_context():
            return handler(*args, **kwargs)

    return plain


@contextlib.contextmanager
def _generation_context() -> Any:
    """engine.turns.CALLER = the signed-in user (else the browser session) of the Gradio request being served,
    and NOTIFY = a toast on that user's page (a log message to an API client)."""
    from gradio.context import LocalContext

    from engine.turns import CALLER, NOTIFY

    request = LocalContext.request.get(None)
    session = getattr(request, "session_hash", None)
    caller = getattr(request, "username", None) or (f"session:{session}" if session else None)
    tokens = CALLER.set(caller), NOTIFY.set(_tell_caller)
    try:
        yield
    finally:
        CALLER.reset(tokens[0])
        NOTIFY.reset(tokens[1])


def _tell_caller(message: str) -> None:
    import gradio as gr

    gr.Info(message, duration=5)


def launch_folders(args: argparse.Namespace, upload_dir: Path) -> Any:
    """What the admin tab's launches may read and write (issue 13 item 4): run folders under ./runs; data
    under ./data, the bundled sample set, the upload folder and --media-root."""
    from training.jobs import ASSETS_DIR, Folders

    media = (args.media_root,) if args.media_root else ()
    return Folders(runs=("runs",), data=("data", ASSETS_DIR, upload_dir, *media))


def _record_instructions(db: Any) -> None:
    """Exports (the admin tab's launches) build each pair's prompt from these; a read-only database
    already has them or cannot take them: say so and serve what can be read."""
    from annotations.errors import ReadOnlyError
    from engine.tasks import record_instructions

    try:
        record_instructions(db)
    except ReadOnlyError as exc:
        print(f"note: {exc}; serving it read-only", file=sys.stderr)


def make_work_dir(root: str | os.PathLike[str] | None = None) -> tuple[Path, int]:
    """A fresh `vidprompter-ui-*` folder in the temp dir (or `root`) and the descriptor of the flock this process
    holds on its `.lock` for as long as it runs (the kernel drops it on any exit, kill -9 included): how
    sweep_stale_work_dirs tells a live app's folder from a dead one's."""
    folder = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=root))
    return folder, acquire_lock(folder / ".lock", blocking=False)


def sweep_stale_work_dirs(
    root: str | os.PathLike[str] | None = None, mine: Path | None = None, max_age_s: float = CACHE_MAX_AGE_S
) -> list[Path]:
    """Delete this user's `vidprompter-ui-*` folders whose app is gone (their lock is free), and lock-less ones
    (older releases, tests) untouched for `max_age_s`; returns the folders removed. Each start left one."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{WORK_PREFIX}*"):
        try:
            if folder == mine or folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            if _dead(folder, max_age_s):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError:  # vanished meanwhile, or not ours to read
            continue
    return removed


def _dead(folder: Path, max_age_s: float) -> bool:
    lock = folder / ".lock"
    if not lock.exists():
        return time.time() - folder.stat().st_mtime > max_age_s
    try:
        os.close(acquire_lock(lock, blocking=False, create=False))
    except BlockingIOError:
        return False  # its app holds it: alive
    return True


def sweep_once(work_dir: Path, upload_dir: Path | None, db: Any) -> None:
    """One round of the sweeper (at start, then every CACHE_SWEEP_S): per-request outputs and exports older
    than CACHE_MAX_AGE_S, files of extracted imports no sample uses (and extractions a crash left half-done)
    untouched that long, and the work folders of apps no longer running."""
    from annotations.archive import prune_extracted
    from annotations.importer import videos_under
    from ui.common import sweep

    for name in SWEPT_WORK_FOLDERS:
        sweep(work_dir / name, CACHE_MAX_AGE_S)
    imports = upload_dir / "imports" if upload_dir is not None else None
    if imports is not None and imports.is_dir():
        cutoff = time.time() - CACHE_MAX_AGE_S
        for folder in imports.iterdir():
            with contextlib.suppress(OSError):
                if folder.name.startswith(".") and folder.name.endswith(".tmp"):
                    if folder.stat().st_mtime < cutoff:
                        shutil.rmtree(folder, ignore_errors=True)
                elif folder.is_dir() and not folder.is_symlink():
                    prune_extracted(folder, videos_under(db, folder), older_than_s=CACHE_MAX_AGE_S)
    sweep_stale_work_dirs(mine=work_dir)


def _sweeper(ctx: Any, work_lock: int) -> Any:
    """A lifespan for the app: sweep_once (and a malloc trim) at start and every CACHE_SWEEP_S; at shutdown the
    app's own work folder goes (a killed app's is swept by the next start)."""
    from engine import malloc

    def sweep_logged() -> None:
        try:
            sweep_once(ctx.work_dir, ctx.upload_dir, ctx.db)
            malloc.trim()  # freed pages at the top of the arenas go back to the system
        except Exception:  # noqa: BLE001 - a sweep must never stop the app; the next round retries
            logging.getLogger("vidprompter").exception("sweep failed")

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        async def loop() -> None:
            while True:
                await asyncio.to_thread(sweep_logged)
                await asyncio.sleep(CACHE_SWEEP_S)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            shutil.rmtree(ctx.work_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.close(work_lock)

    return lifespan


class ErrorThrottle(logging.Filter):
    """One line per distinct error per `window_s` (issue 24 item 2): a handler failing on every request (a full
    descriptor table, a full disk) logged a traceback per request, 86 MB in seconds. An error is "distinct" by
    logger, message, exception type and the innermost frame that raised it; its line names all four, and the
    next line after the window says how many were left out. Warnings (the guard's "X refused: ..." lines) are
    throttled the same way, by their text; records below WARNING pass untouched."""

    MAX_KEYS = 1000

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s, self.clock = window_s, clock
        self._seen: dict[tuple[str, ...], tuple[float, int]] = {}  # key -> (last line's time, left out since)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        where = _innermost(exc)
        key = (record.name, record.getMessage(), type(exc).__name__ if exc else "", where)
        now = self.clock()
        with self._lock:
            last, left_out = self._seen.get(key, (None, 0))
            if last is not None and now - last < self.window_s:
                self._seen[key] = (last, left_out + 1)
                return False
            if len(self._seen) >= self.MAX_KEYS:
                self._seen.clear()
            self._seen[key] = (now, 0)
        line = record.getMessage()
        if exc is not None:
            text = " ".join(str(exc).split())[:300]
            line += f": {type(exc).__name__}: {text} (at {where})" if text else f": {type(exc).__name__} (at {where})"
        if left_out:
            line += f" [{left_out} more like it in the last {self.window_s:.0f} s not logged]"
        record.msg, record.args, record.exc_info, record.exc_text, record.stack_info = line, None, None, None, None
        return True


def _innermost(exc: BaseException | None) -> str:
    """file:line in function of the frame that raised `exc` ('' without a traceback)."""
    frames = traceback.extract_tb(exc.__traceback__) if exc is not None and exc.__traceback__ else []
    if not frames:
        return ""
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


#: Loggers whose errors are throttled: our handlers' guard, and the server's own "Exception in ASGI application".
THROTTLED_LOGGERS = ("vidprompter", "vidprompter.ui", "uvicorn.error")


def install_log_throttle(window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
    """Put an ErrorThrottle on each of THROTTLED_LOGGERS (replacing one installed before)."""
    for name in THROTTLED_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, ErrorThrottle)]:
            logger.removeFilter(old)
        logger.addFilter(ErrorThrottle(window_s, clock))


class SafeStream:
    """sys.stdout / sys.stderr for the server: a write or flush that fails (the log's disk is full) drops the
    text instead of raising into whatever printed it, a request handler or Gradio's own error path, which
    then never answered (issue 24 item 4). Counts what it dropped; writes again once space is back."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.dropped = 0

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            self.dropped += 1
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            self.dropped += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install_safe_streams() -> None:
    """SafeStream around sys.stdout and sys.stderr (once), and logging that never raises from a handler."""
    logging.raiseExceptions = False
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, SafeStream):
            setattr(sys, name, SafeStream(stream))


def install_shutdown(grace_s: float = SHUTDOWN_GRACE_S) -> None:
    """SIGTERM behaves like Ctrl-C (Gradio's launch() then closes the server), and the process exits
    within `grace_s` even if a handler thread is mid-generation (Python would join it at exit).
    Training runs are separate processes in their own sessions: they keep running, resumable."""

    def on_signal(signum: int, _frame: Any) -> None:
        watchdog = threading.Timer(grace_s, os._exit, args=(0,))
        watchdog.daemon = True
        watchdog.start()
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends it at once
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _upload_dir(db_url: str) -> Path:
    """Videos sent to the labelling queue sit beside a SQLite file (else in ./data/uploads)."""
    prefix = "sqlite:///"
    if db_url.startswith(prefix) and db_url[len(prefix) :] not in ("", ":memory:"):
        return Path(db_url[len(prefix) :]).resolve().parent / "uploads"
    return Path("data/uploads").resolve()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.add_user:
        return add_user_command(args)
    from annotations.errors import StoreError
    from engine import malloc
    from engine.errors import StudioError
    from ui.auth import AuthFileError

    # Before gradio or a model starts a thread: the workers share two allocator arenas, so RSS stays bounded
    # under mixed traffic (issue 24: +20 % over a 30-minute soak with one arena per worker thread).
    malloc.cap_arenas()
    install_safe_streams()
    try:
        demo, kwargs = build(args)
    except (StudioError, StoreError, AuthFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if kwargs["auth"] is None:
        # Anyone who reaches the port is the admin: say so, and what to do before serving other machines.
        print(
            "No --auth-file: single-user local mode (user 'local', admin); keep it on this machine (the default "
            "--host 127.0.0.1) or pass --auth-file accounts before --host 0.0.0.0."
        )
    install_shutdown()
    try:
        demo.launch(**kwargs)
    except KeyboardInterrupt:  # a signal before launch() reached its own loop
        pass
    return 0


#: `vidprompter <command> ...`: which module's CLI runs each command (its own flags and --help).
CONSOLE_COMMANDS = {
    "app": ("app", "start the app (the flags of python app.py)"),
    "train": ("training", "train from a config (python -m training)"),
    "loop": ("training.loop", "the paper's loop in one command (python -m training loop)"),
    "ship": ("training.ship", "fold a LoRA chain into one shipped adapter (python -m training ship)"),
    "import": ("annotations", "import sample rows (python -m annotations import)"),
    "export": ("annotations", "export preference pairs (python -m annotations export)"),
    "stats": ("annotations", "counts and agreement (python -m annotations stats)"),
    "add-annotator": ("annotations", "add an annotator (python -m annotations add-annotator)"),
}
#: Every other command is python -m engine's (generate, score, judge, mine-pairs, evaluate, teacher, ...).
ENGINE_HELP = "python -m engine's commands: generate, hallucinate-text, hallucinate-video, score, judge, " + (
    "mine-pairs, evaluate, teacher, ground, strength, tokens, generate-video, evaluate-video, ..."
)


def console(argv: Sequence[str] | None = None) -> int:
    """The `vidprompter` console command: `vidprompter app ...`, `vidprompter generate ...`, `vidprompter train
    ...`, `vidprompter loop ...`; each hands its arguments to the module that owns the command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        lines = ["usage: vidprompter <command> [args] (each command has its own --help)", ""]
        lines += [f"  {name:14s} {text}" for name, (_, text) in CONSOLE_COMMANDS.items()]
        lines += [f"  {'(others)':14s} {ENGINE_HELP}"]
        print("\n".join(lines))
        return 0 if args else 2
    command, rest = args[0], args[1:]
    owner = CONSOLE_COMMANDS.get(command, ("engine", ""))[0]
    if owner == "app":
        return main(rest)
    if owner == "training":
        from training.__main__ import main as train_main

        return train_main(rest)
    if owner == "training.loop":
        from training.loop import main as loop_main

        return loop_main(rest)
    if owner == "training.ship":
        from training.ship import main as ship_main

        return ship_main(rest)
    if owner == "annotations":
        from annotations.cli import main as annotations_main

        return annotations_main([command, *rest])
    from engine.cli import main as engine_main

    return engine_main([command, *rest])


if __name__ == "__main__":
    sys.exit(main())
