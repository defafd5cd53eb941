"""mdpsandbox: ground truth for value-based RL on token and tabular MDPs.

Data flows one way: environment → exact solver → learner → comparison → report.
"""
from ._math import log_softmax, logsumexp
from .envs import (
    TabularMDP,
    TokenMDP,
    TreeTooLargeError,
    bandit,
    bernoulli_tree,
    chain,
    garnet,
    gridworld,
    qsharp_counterexample,
    target_string,
    token_count,
)
from .solvers import BatchSolution, ConvergenceWarning, Evaluation, Solution, evaluate, solve, solve_batch

__version__ = "0.1.0"


def __getattr__(name):
    # learned-vs-exact comparison lives with the learners (torch); import it only when asked for
    if name == "compare":
        from .learners.compare import compare

        return compare
    raise AttributeError(f"module 'mdpsandbox' has no attribute {name!r}")


__all__ = [
    "TabularMDP", "TokenMDP", "TreeTooLargeError", "garnet", "chain", "gridworld", "bandit",
    "target_string", "token_count", "bernoulli_tree", "qsharp_counterexample", "solve", "evaluate",
    "solve_batch", "Solution", "Evaluation", "BatchSolution", "ConvergenceWarning", "logsumexp", "log_softmax",
    "compare",
]
