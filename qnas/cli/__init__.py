"""The ``qnas`` command line (``qnas.cli.main``).

Before anything imports torch, the OpenMP wait policy is chosen from the machine's load unless the user
set ``OMP_WAIT_POLICY``: threads spin for work on an idle machine (a training step up to twice as fast)
and wait passively where another process already keeps a CPU busy (there, spinning makes a step about
twice as slow). ``qnas.cpus``; ``benchmarks/results/steady_under_load.md``.
"""

from qnas.cpus import choose_wait_policy

choose_wait_policy()
