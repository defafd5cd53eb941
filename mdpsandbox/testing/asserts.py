r"""Assertions comparing learned values / policies with exact ones, with messages that say *where*.

A failing comparison names the worst entry in the env's own terms — ``state 3, action 1`` for a
:class:`~mdpsandbox.TabularMDP`, ``prompt 0, node 12 (prefix (2, 1)), token 0`` for a
:class:`~mdpsandbox.TokenMDP` (the prefix comes from ``env.prefix(node)``) — with the expected and
actual numbers, the number of entries out of tolerance and the tolerance used. Use them in your CI::

    from mdpsandbox import solve
    from mdpsandbox.testing import assert_values_close, assert_policy_close

    exact = solve(env, beta=0.1)
    assert_values_close(learned_q, exact.q, atol=1e-6, rtol=0, env=env, name="Q")
    assert_policy_close(softmax(learned_logits), exact.policy, atol=1e-6, env=env)
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["assert_values_close", "assert_policy_close", "describe_entry"]


def _is_token(env) -> bool:
    from ..envs.token import TokenMDP

    return isinstance(env, TokenMDP)


def describe_entry(env, shape: tuple, index: tuple) -> str:
    """Human-readable name of entry ``index`` of an array of ``shape`` laid out like ``env``'s arrays.

    TokenMDP: ``(n_nodes,)``, ``(n_nodes, V)`` or with a leading prompt axis → prompt, node, prefix,
    token. TabularMDP: ``(S,)``, ``(S, A)`` or with a leading stage axis ``(H, S[, A])`` (finite
    horizon) → stage, state, action. Any other layout (or ``env=None``) → the raw index.
    """
    index = tuple(int(i) for i in index)
    if env is None or not shape:
        return f"index {index}" if index else "the scalar"
    if _is_token(env):
        N, V = env.n_nodes, env.vocab_size
        lead = []
        rest = index
        if env.n_prompts > 1 and len(shape) >= 2 and shape[0] == env.n_prompts and shape[1] == N:
            lead.append(f"prompt {rest[0]}")
            rest = rest[1:]
        elif env.n_prompts == 1 and shape[0] == N:
            lead.append("prompt 0")
        else:
            return f"index {index}"
        node = rest[0]
        parts = lead + [f"node {node} (prefix {env.prefix(node)})"]
        if len(rest) == 2 and shape[-1] == V:
            tok = rest[1]
            tag = " = EOS" if env.eos is not None and tok == env.eos else ""
            parts.append(f"token {tok}{tag}")
        elif len(rest) > 2:
            return f"index {index}"
        return ", ".join(parts)
    S = getattr(env, "n_states", None)
    A = getattr(env, "n_actions", None)
    if S is None:
        return f"index {index}"
    if len(shape) == 1 and shape[0] == S:
        return f"state {index[0]}"
    if len(shape) == 2 and shape == (S, A):
        return f"state {index[0]}, action {index[1]}"
    if len(shape) == 2 and shape[1] == S:
        return f"stage {index[0]}, state {index[1]}"
    if len(shape) == 3 and shape[1:] == (S, A):
        return f"stage {index[0]}, state {index[1]}, action {index[2]}"
    return f"index {index}"


def _as_float(x, what: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # e.g. a torch tensor needing .detach()
        raise AssertionError(f"{what} cannot be converted to a float64 array: {exc}") from None


def assert_values_close(actual, expected, *, atol: float = 1e-9, rtol: float = 1e-9, env=None,
                        name: str = "value") -> None:
    r"""Assert ``|actual − expected| ≤ atol + rtol·|expected|`` entrywise (NaN never passes;
    equal infinities do).

    actual, expected : arrays of the same shape (values ``(S,)``/``(n_nodes,)``, Q ``(S, A)``/
        ``(n_nodes, V)``, with a prompt or stage axis, or anything else).
    env : optional TabularMDP / TokenMDP used to name the worst entry (state/action or
        prompt/node/prefix/token).
    name : what is compared (appears in the message), e.g. ``"V"`` or ``"Q"``.

    Raises AssertionError naming the entry with the largest excess over the tolerance, its
    expected and actual values, and how many entries fail.
    """
    a = _as_float(actual, f"{name} (actual)")
    e = _as_float(expected, f"{name} (expected)")
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape mismatch, actual {a.shape} vs expected {e.shape}")
    if a.size == 0:
        return
    with np.errstate(invalid="ignore", over="ignore"):
        same = (a == e) & ~np.isnan(a)  # also equal infinities
        err = np.abs(a - e)
        allowed = atol + rtol * np.abs(e)
        excess = np.where(same, -np.inf, err - allowed)
    excess = np.where(np.isnan(excess), np.inf, excess)  # NaN anywhere is a failure
    bad = excess > 0
    if not bad.any():
        return
    idx = np.unravel_index(int(np.argmax(excess)), a.shape)
    where = describe_entry(env, a.shape, idx)
    raise AssertionError(
        f"{name} differs at {where}: expected {e[idx]!r}, actual {a[idx]!r} "
        f"(|diff| = {abs(a[idx] - e[idx])!r} > atol {atol:g} + rtol {rtol:g}·|expected|); "
        f"{int(bad.sum())} of {a.size} entries out of tolerance"
    )


def assert_policy_close(actual, expected, *, atol: float = 1e-9, env=None, name: str = "policy") -> None:
    r"""Assert that ``actual`` is a probability distribution over the last axis and that
    ``|π_actual(a|s) − π_expected(a|s)| ≤ atol`` for every state and action.

    actual, expected : ``(S, A)`` / ``(n_nodes, V)`` (optionally with a leading prompt or stage axis).
    env : optional env used to name the worst state and action (for a TokenMDP: prompt, node,
        token prefix and token).

    The message names the worst (state, action), both probabilities, and the total-variation
    distance between the two rows at that state.
    """
    a = _as_float(actual, f"{name} (actual)")
    e = _as_float(expected, f"{name} (expected)")
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape mismatch, actual {a.shape} vs expected {e.shape}")
    if a.size == 0:
        return
    if not np.all(np.isfinite(a)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise AssertionError(f"{name} is not finite at {describe_entry(env, a.shape, idx)}: {a[idx]!r}")
    if np.any(a < -atol):
        idx = np.unravel_index(int(np.argmin(a)), a.shape)
        raise AssertionError(f"{name} has a negative probability at {describe_entry(env, a.shape, idx)}: {a[idx]!r}")
    sums = a.sum(axis=-1)
    dev = np.abs(sums - 1.0)
    if np.any(dev > max(atol, 1e-9) * a.shape[-1]):
        row = np.unravel_index(int(np.argmax(dev)), sums.shape)
        idx = row + (0,)
        where = describe_entry(env, a.shape, idx).rsplit(",", 1)[0] if a.ndim > 1 else "the row"
        raise AssertionError(f"{name} is not a distribution at {where}: probabilities sum to {sums[row]!r}")
    err = np.abs(a - e)
    if np.all(err <= atol):
        return
    idx = np.unravel_index(int(np.argmax(err)), a.shape)
    tv = 0.5 * float(np.abs(a[idx[:-1]] - e[idx[:-1]]).sum())
    where = describe_entry(env, a.shape, idx)
    raise AssertionError(
        f"{name} differs at {where}: expected probability {e[idx]!r}, actual {a[idx]!r} "
        f"(|diff| = {err[idx]!r} > atol {atol:g}; total variation at that state {tv:.3g}); "
        f"{int((err > atol).sum())} of {a.size} entries out of tolerance"
    )
