"""Assertion for users' CI: learned logits against the exact KL-regularised Q* of a token MDP."""
from __future__ import annotations

import numpy as np

__all__ = ["assert_logits_match_q"]


def assert_logits_match_q(logits, env, beta: float, *, convention: str = "shiq", atol: float = 1e-4,
                          mask=None, solution=None) -> dict:
    """Assert that a logit table ``(n_nodes, V)`` matches the exact solution of ``env`` at ``beta``.

    convention : how the logits encode Q* (``mdpsandbox.compare``): ``"shiq"`` (ℓ_ref + Q*/β),
        ``"l2"`` (log π_ref + Q*/β), ``"q"`` (Q*), ``"policy"`` (log π*, compared as log-probabilities).
    atol : allowed max absolute error.  mask : optional nodes/pairs to check (default: reachable nodes).

    On failure raises ``AssertionError`` naming the worst entry as a token prefix and token, with the
    expected and actual values. Returns the metrics dict of ``compare`` on success.
    """
    from .compare import compare

    m = compare(logits, env, beta=beta, convention=convention, solution=solution, mask=mask)
    if not m["logit_error"] <= atol:
        w = m["worst"]
        target = {"shiq": "l_ref + Q*/beta", "l2": "log pi_ref + Q*/beta", "q": "Q*", "policy": "log pi*"}[convention]
        raise AssertionError(
            f"logits do not match {target} (convention {convention!r}, beta={beta}): worst at {w['where']} "
            f"token {w['token']}: expected {w['expected']:.10g}, actual {w['actual']:.10g} "
            f"(|diff| {abs(w['expected'] - w['actual']):.3e} > atol {atol:g}); "
            f"policy TV max {m['tv_max']:.3e}, root value error {m['value_error']:.3e}")
    return m
