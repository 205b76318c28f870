"""The Gradio app (one module per tab). Calls engine.service.Studio (and engine.types), annotations, and
the training jobs object (training.jobs.Jobs) that app.py puts in the AppContext.

Never imports torch: tests/ui/test_imports.py checks that `import ui` and `build_app` leave it out.
The names below load on first use, so `python app.py --add-user` (ui.auth alone) starts without
importing Gradio (~10 s of imports on a busy 2-core machine, x10 for ten parallel runs).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AppContext", "build_app", "launch_kwargs"]


def __getattr__(name: str) -> Any:
    if name == "AppContext":
        from ui.common import AppContext

        return AppContext
    if name in ("build_app", "launch_kwargs"):
        from ui import layout

        return getattr(layout, name)
    raise AttributeError(f"module 'ui' has no attribute {name!r}")
