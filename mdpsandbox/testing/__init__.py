r"""Testing utilities for mdpsandbox and for users' CI: hypothesis strategies that draw valid MDPs
and policies, and assertions that compare learned numbers with exact ones and say *where* they
differ (state/action, or prompt/node/token prefix/token).

Typical CI check of a learner against the exact solution::

    import numpy as np
    import mdpsandbox as ms
    from mdpsandbox.testing import assert_policy_close, assert_values_close

    env = ms.TokenMDP.random(4, 4, seed=0)
    exact = ms.solve(env, beta=0.1)
    learned_logits = ...                                   # (n_nodes, V), your model on every prefix
    assert_policy_close(np.exp(ms.log_softmax(learned_logits)), exact.policy, atol=1e-4, env=env)

Property tests::

    from hypothesis import given, settings
    from mdpsandbox.testing import tabular_mdps, token_mdps, policies

    @settings(max_examples=25, deadline=None)   # numba compiles on first call: no deadline
    @given(tabular_mdps(max_states=5, gamma=0.9))
    def test_my_backup(mdp): ...

Failure messages look like ``V differs at prompt 0, node 5 (prefix (1, 0)): expected 0.31, actual
0.29 (...)``.
"""
from .asserts import assert_policy_close, assert_values_close, describe_entry
from .compare import CONVENTIONS, compare, policy_from_logits
from .learners import assert_logits_match_q

_STRATEGIES = ("tabular_mdps", "token_mdps", "policies", "seeds")


def __getattr__(name):
    # The strategies need hypothesis (a dev extra); the assertions do not, so import lazily.
    if name in _STRATEGIES:
        try:
            from . import strategies
        except ImportError as exc:  # pragma: no cover - hypothesis is in the dev extra
            raise ImportError(f"mdpsandbox.testing.{name} needs hypothesis: pip install hypothesis") from exc
        return getattr(strategies, name)
    raise AttributeError(f"module 'mdpsandbox.testing' has no attribute {name!r}")


__all__ = [
    "tabular_mdps", "token_mdps", "policies", "seeds",
    "assert_values_close", "assert_policy_close", "describe_entry",
    "assert_logits_match_q", "compare", "policy_from_logits", "CONVENTIONS",
]
