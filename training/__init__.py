"""HDPO training: losses, log-probs, data, the trainer, the job runner, the loop (see engine/__init__.py for the
OpenMP wait policy this package inherits by importing the engine first)."""

import engine  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)
