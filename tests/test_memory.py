"""Memory budgets are checked before work and the refusal names the bytes."""
import numpy as np
import pytest

import mdpsandbox as ms
from mdpsandbox._memory import MemoryBudgetError, available_bytes, check_memory


def test_budget_refusal_names_bytes_before_work():
    with pytest.raises(MemoryBudgetError, match=r"would need about 99,200,000,000 bytes"):
        ms.garnet(10**8, 4, 5)
    with pytest.raises(ValueError, match="within budget"):
        check_memory(10**6, "a thing", max_bytes=10**5)
    check_memory(10, "a small thing")
    assert available_bytes() is None or available_bytes() > 0


def test_vectorised_garnet_has_distinct_successors_and_stochastic_rows():
    mdp = ms.garnet(20000, 3, 6, seed=0)     # S·A·S > 4e7: the vectorised distinct sampler
    P = mdp.P2
    counts = np.diff(P.indptr)
    assert np.all(counts == 6)                # 6 distinct successors per (s, a): no duplicate was merged
    np.testing.assert_allclose(np.asarray(P.sum(axis=1)).ravel(), 1.0, atol=1e-12)
    # successors uniform over states: each state is hit ≈ A·b times (Poisson), none systematically missed
    hits = np.bincount(P.indices, minlength=20000)
    assert abs(hits.mean() - 18.0) < 1e-9 and hits.std() < 6.0


def test_policy_iteration_checks_its_memory_before_work(monkeypatch):
    import mdpsandbox._memory as mem

    mdp = ms.garnet(600, 4, 5, gamma=0.99, seed=0)        # sparse
    monkeypatch.setattr(mem, "available_bytes", lambda: 10_000)
    with pytest.raises(MemoryBudgetError, match="policy iteration"):
        ms.solve(mdp, method="pi")
    monkeypatch.undo()
    assert ms.solve(mdp, method="pi").converged
