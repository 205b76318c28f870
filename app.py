"""Start VidPrompter Studio: `python app.py [--host H] [--port P] [--db URL] [--auth-file PATH] [--model NAME]`.

Builds the Studio facade (models load lazily, so the page is up in seconds), the annotation
database engine (recording the task instructions its exports build prompts from) and the training
jobs object on it, lays out the UI and launches it. Without --auth-file the app runs in single-user
local mode (user "local", admin). Add accounts with:

    python app.py --add-user alice --role admin --auth-file auth.json   # password from stdin or
                                                                        # $VIDPROMPTER_PASSWORD
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported inside the functions: `--add-user` needs neither gradio nor the engine
    import gradio as gr

    from engine.service import StudioConfig

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # else it calls api.gradio.app at start

PASSWORD_ENV = "VIDPROMPTER_PASSWORD"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
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
    parser.add_argument("--add-user", metavar="NAME", help="add or replace a user in --auth-file, then exit")
    parser.add_argument("--role", default="annotator", choices=["annotator", "admin"], help="role for --add-user")
    return parser.parse_args(argv)


def add_user_command(args: argparse.Namespace) -> int:
    from ui.auth import AuthFileError, add_user

    if not args.auth_file:
        print("error: --add-user needs --auth-file PATH", file=sys.stderr)
        return 2
    password = os.environ.get(PASSWORD_ENV) or _read_password()
    try:
        add_user(args.auth_file, args.add_user, password, args.role)
    except AuthFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"user {args.add_user!r} ({args.role}) written to {args.auth_file}")
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\n")


def studio_config(model: str | None) -> StudioConfig:
    """StudioConfig with --model applied to the task family its preset serves."""
    from engine.models import resolve
    from engine.service import StudioConfig

    if not model:
        return StudioConfig()
    kind = resolve(model).kind  # ModelLoadError for an unknown name: reported by main()
    return StudioConfig(video_model=model) if kind == "video" else StudioConfig(text_model=model)


def build(args: argparse.Namespace) -> tuple[gr.Blocks, dict[str, Any]]:
    """(Blocks, launch kwargs) from parsed flags. Raises StudioError / StoreError / AuthFileError."""
    from annotations.db import default_db_url, open_db
    from engine.service import Studio
    from engine.tasks import record_instructions
    from training.jobs import Jobs
    from ui import AppContext, build_app, launch_kwargs
    from ui.auth import Accounts
    from ui.common import SAMPLES_DIR

    db_url = args.db or default_db_url()
    accounts = Accounts.load(args.auth_file) if args.auth_file else None
    db = open_db(db_url)  # one engine for the whole app: handlers and training jobs share it
    record_instructions(db)  # exports (the admin tab's launches) build each pair's prompt from these
    studio = Studio(studio_config(args.model))
    ctx = AppContext(studio=studio, db=db, jobs=Jobs(db, db_url), accounts=accounts)
    ctx.upload_dir = _upload_dir(db_url)
    demo = build_app(ctx)
    kwargs = launch_kwargs() | {
        "server_name": args.host,
        "server_port": args.port,
        "auth": accounts.check if accounts else None,
        "auth_message": "VidPrompter Studio: sign in with your annotator or admin account." if accounts else None,
        "allowed_paths": [str(SAMPLES_DIR)],  # only the sample clips; generated media lives in the temp dir
    }
    return demo, kwargs


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
    from engine.errors import StudioError
    from ui.auth import AuthFileError

    try:
        demo, kwargs = build(args)
    except (StudioError, StoreError, AuthFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if kwargs["auth"] is None:
        print("No --auth-file: single-user local mode (user 'local', admin). Use --host 127.0.0.1 only.")
    demo.launch(**kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
