"""Search under budgets: constraints, registered strategies (evolution, random, nsga2, gumbel), the resumable driver.

Never imports torch: the driver sees an ``Evaluator`` that maps a genome to metrics.
"""

from qnas.search.constraints import (
    BudgetError,
    Constraint,
    check_achievable,
    feasible,
    parse_budget,
    sample_feasible,
    smallest_costs,
)
from qnas.search.driver import Evaluator, Mapper, Search, SearchMonitor, SearchSettings, pareto_front, serial_map
from qnas.search.strategy import FITNESS, STRATEGIES, Candidate, Strategy, generation_strategies, register_strategy
from qnas.search import evolution, gumbel, nsga2  # noqa: F401  (registers evolution, random, nsga2, gumbel)

__all__ = [
    "FITNESS", "STRATEGIES", "BudgetError", "Candidate", "Constraint", "Evaluator", "Mapper", "Search",
    "SearchMonitor", "SearchSettings", "Strategy", "check_achievable", "generation_strategies", "feasible", "pareto_front", "parse_budget",
    "register_strategy", "sample_feasible", "serial_map", "smallest_costs",
]
