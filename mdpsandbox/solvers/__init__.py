"""Exact solvers: Bellman backups, dynamic programming (VI / PI / backward induction, evaluation),
and batched solves of many small MDPs."""
from .backups import Regulariser, bellman_backup, q_backup, tree_level_value
from .batch import BatchSolution, solve_batch
from .dp import ConvergenceWarning, Evaluation, Solution, evaluate, make_regulariser, solve

__all__ = [
    "Regulariser", "bellman_backup", "q_backup", "tree_level_value", "BatchSolution", "solve_batch",
    "ConvergenceWarning", "Evaluation", "Solution", "evaluate", "solve", "make_regulariser",
]
