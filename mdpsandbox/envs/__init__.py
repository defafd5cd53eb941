"""Environments: tabular MDPs, token MDPs (trees in the canonical node order) and generators."""
from .generators import bandit, chain, garnet, gridworld
from .dag import DAG, MultisetDAG, TreeDAG, multiset_dag, random_log_reward, tree_dag
from .sepsis import sepsis_mdp
from .tabular import TabularMDP
from .token import (
    Leaves,
    TokenMDP,
    Trajectories,
    TreeTooLargeError,
    bernoulli_tree,
    n_tree_nodes,
    qsharp_counterexample,
    target_string,
    token_count,
    tree_bytes,
)

__all__ = [
    "TabularMDP", "TokenMDP", "Trajectories", "Leaves", "TreeTooLargeError", "garnet", "chain",
    "gridworld", "bandit", "target_string", "token_count", "bernoulli_tree", "qsharp_counterexample",
    "n_tree_nodes", "tree_bytes",
    "DAG", "MultisetDAG", "TreeDAG", "multiset_dag", "tree_dag", "random_log_reward",
    "sepsis_mdp",
]
