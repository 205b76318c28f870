"""The Gradio app (one module per tab). Calls engine.service.Studio (and engine.types), annotations, and
the training jobs object (training.jobs.Jobs) that app.py puts in the AppContext.

Never imports torch: tests/ui/test_imports.py checks that `import ui` and `build_app` leave it out.
"""

from ui.common import AppContext
from ui.layout import build_app, launch_kwargs

__all__ = ["AppContext", "build_app", "launch_kwargs"]
