import os
import sys

# Quiet, offline-friendly defaults before transformers / diffusers are imported anywhere.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from engine.t2v.cli import main  # noqa: E402

sys.exit(main())
