"""The ``qnas`` command line (``qnas.cli.main``).

Before anything imports torch, OpenMP is asked to wait passively for work unless the user chose a
policy: with the default active waiting, a training step beside one other busy process is up to
ten times slower (``benchmarks/results/steady_under_load.md``; ``qnas.pipeline.threads``).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
