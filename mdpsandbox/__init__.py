"""mdpsandbox: ground truth for value-based RL on token and tabular MDPs.

Data flows one way: environment → exact solver → learner → comparison → report.
"""
from ._numba_cache import configure_numba_cache as _configure_numba_cache

_configure_numba_cache()  # before numba is imported: a user cache dir when the install is read-only

from ._math import log_softmax, logsumexp  # noqa: E402
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
    # learned-vs-exact comparison (numpy only; mdpsandbox.testing.compare), imported when asked for
    if name == "compare":
        from .testing.compare import compare

        return compare
    raise AttributeError(f"module 'mdpsandbox' has no attribute {name!r}")


__all__ = [
    "TabularMDP", "TokenMDP", "TreeTooLargeError", "garnet", "chain", "gridworld", "bandit",
    "target_string", "token_count", "bernoulli_tree", "qsharp_counterexample", "solve", "evaluate",
    "solve_batch", "Solution", "Evaluation", "BatchSolution", "ConvergenceWarning", "logsumexp", "log_softmax",
    "compare",
]
