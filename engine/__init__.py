"""VidPrompter's engine: tasks, models and backends, augmentations, evaluators, mining, the Studio facade.

Importing it sets one process-wide default before torch starts its thread pool: OpenMP threads wait passively
(OMP_WAIT_POLICY=PASSIVE) unless the environment says otherwise. With the default active spin, two torch
processes on the 2-core machine (the app and a training run, the tests and their app) made each other's
decoding 10x slower (2.0 s instead of 0.2 s per step of 8 rows, measured), and an idle app kept spinning.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
