"""What the search benchmarks share: the evolution settings of their searches and the config they search with.

Imported by ``differentiable_search.py``, ``fasterseg_space.py`` and ``teacher_student.py`` (run as scripts, so
this folder is on ``sys.path``).
"""

from __future__ import annotations

from dataclasses import replace

from qnas.config import load_config
from qnas.pipeline import Context

__all__ = ["EVOLUTION", "evolution_context"]

EVOLUTION = dict(population=16, parents=8, mutants=8, crossovers=8)  # 96 evaluations in 6 generations


def evolution_context(config: str, *, keep_budgets: bool = True, gumbel: dict | None = None, **train) -> Context:
    """The config with the benchmarks' evolution settings, ``gumbel``'s search.gumbel settings and ``train``'s
    train settings; ``keep_budgets=False``: without the config's budgets (a search under its own budget alone)."""
    cfg = load_config(config)
    unbudgeted = {} if keep_budgets else {"bitops_budget": None, "latency_budget": None, "memory_budget": None}
    search = replace(cfg.search, **EVOLUTION, **unbudgeted, gumbel=replace(cfg.search.gumbel, **(gumbel or {})))
    return Context(replace(cfg, search=search, train=replace(cfg.train, **train)), source=config)
