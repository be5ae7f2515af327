"""Search under budgets: constraints, evolution and random search, resumable state (never imports torch)."""

from qnas.search.constraints import (
    BudgetError,
    Constraint,
    check_achievable,
    feasible,
    parse_budget,
    sample_feasible,
    smallest_costs,
)
from qnas.search.evolution import FITNESS, Candidate, Evaluator, Search, SearchMonitor, SearchSettings, pareto_front

__all__ = [
    "FITNESS", "BudgetError", "Candidate", "Constraint", "Evaluator", "Search", "SearchMonitor", "SearchSettings",
    "check_achievable", "feasible", "pareto_front", "parse_budget", "sample_feasible", "smallest_costs",
]
