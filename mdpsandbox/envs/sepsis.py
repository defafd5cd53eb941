r"""A sepsis-style benchmark MDP with an *exact* transition tensor (docs/math.md §1, §10).

Re-implements the dynamics of the public sepsis simulator of Oberst & Sontag (2019, "Counterfactual
Off-Policy Evaluation with Gumbel-Max Structural Causal Models", ICML), written from its published
description and source as a reference (not copied). The simulator draws random numbers stage by
stage; here every state's outcomes are *enumerated* instead, so the MDP is known exactly and any
solver or IRL method can be compared with ground truth. :func:`sepsis_step` is an independent,
vectorised step-by-step sampler of the same dynamics (uniform draws, like the original), used to
check the enumeration within binomial error.

**State** (the source's "observed" encoding, mixed radix, first variable most significant)::

    hr       heart rate          0 low, 1 normal, 2 high                (3)
    sysbp    systolic BP         0 low, 1 normal, 2 high                (3)
    o2       O2 saturation       0 low, 1 normal                        (2)
    glucose  blood glucose       0 very low, 1 low, 2 normal, 3 high, 4 very high   (5)
    abx, vaso, vent              treatment currently on (0/1 each)      (2, 2, 2)

giving 720 states; with ``observe_diabetes=True`` a leading diabetes flag doubles it to 1440
(index = diabetic·720 + observed index). :func:`encode` / :func:`decode` convert.

**Actions** (8): ``a = 4·abx + 2·vent + vaso`` (antibiotics, mechanical ventilation, vasopressors).
The treatment part of the next state is the action itself.

**One step** applies, in this order (probabilities per the source):

1. antibiotics on: hr high→normal w.p. 0.5, sysbp high→normal w.p. 0.5. Antibiotics off after being
   on: hr normal→high w.p. 0.1, sysbp normal→high w.p. 0.1. Either way hr and sysbp do not fluctuate.
2. ventilation on: o2 low→normal w.p. 0.7. Off after being on: o2 normal→low w.p. 0.1. Either way o2
   does not fluctuate.
3. vasopressors on — non-diabetic: w.p. 0.7 sysbp low→normal / normal→high; diabetic: sysbp
   normal→high w.p. 0.9, low→normal w.p. 0.5, low→high w.p. 0.4, and glucose +1 (capped) w.p. 0.5;
   sysbp and glucose then do not fluctuate. Off after being on: sysbp −1 (floored) w.p. 0.1
   (non-diabetic) or 0.05 (diabetic); sysbp does not fluctuate.
4. fluctuations of the variables still free: hr, sysbp, o2 each −1 w.p. 0.1, +1 w.p. 0.1 (clipped
   to their range); glucose −1 / +1 w.p. 0.1 each (non-diabetic) or 0.3 each (diabetic).

**Outcomes.** A state with ≥ 3 abnormal vitals (hr ≠ 1, sysbp ≠ 1, o2 ≠ 1, glucose ≠ 2) is *death*;
a state with all four vitals normal and every treatment off is *discharge*. Both are absorbing
terminal states; entering them pays −1 and +1 respectively (a reward r(s, a, s') reduced to
r(s, a) by :class:`TabularMDP`); every other step pays 0.

**Initial law** (source): hr, sysbp ~ [.25, .5, .25], o2 ~ [.2, .8], glucose ~ [.05, .15, .6, .15,
.05] (non-diabetic) or [.01, .05, .15, .6, .19] (diabetic), treatments off, conditioned on not
being absorbing (the source redraws until the state is not absorbing).

**Diabetes shift.** ``diabetes_fraction = f`` sets the mixture. With ``observe_diabetes=False``
(default) the 720-state kernel is ``P_f = (1 − f) P_0 + f P_1`` (P_0 non-diabetic, P_1 diabetic):
the one-step law of a patient drawn from the population — a Markov simplification of the source,
where the flag is fixed per patient and hidden (a POMDP). Moving ``f`` is a transition shift with
everything else equal (a source→target pair for reward transfer, docs/math.md §10). With
``observe_diabetes=True`` the flag is part of the state, the MDP is exactly the source's full-state
MDP, and f only sets the initial law.

**Source quirk.** The public source caps a *non-diabetic* upward glucose fluctuation at level 1
(``min(1, g + 1)``, so from normal or high glucose an "upward" fluctuation drops it to low) —
almost certainly a typo for the cap 4. ``source_glucose_cap=True`` (default) reproduces the
source so results agree with work that used it; ``False`` gives the corrected dynamics.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validate import check_gamma, check_int
from .tabular import TabularMDP

__all__ = [
    "SEPSIS_N_OBS_STATES", "SEPSIS_N_ACTIONS", "SEPSIS_VARIABLES", "encode", "decode", "encode_action",
    "decode_action", "sepsis_outcome", "sepsis_initial", "sepsis_transition_matrix", "sepsis_mdp", "sepsis_step",
    "sepsis_simulate",
]

#: (name, number of levels) in significance order of the observed state index
SEPSIS_VARIABLES = (("hr", 3), ("sysbp", 3), ("o2", 2), ("glucose", 5), ("abx", 2), ("vaso", 2), ("vent", 2))
SEPSIS_N_OBS_STATES = 720
SEPSIS_N_ACTIONS = 8
_RADIX = np.array([n for _, n in SEPSIS_VARIABLES])
_WEIGHTS = np.array([int(np.prod(_RADIX[i + 1:])) for i in range(len(_RADIX))])  # 240, 80, 40, 8, 4, 2, 1
_NORMAL = {"hr": 1, "sysbp": 1, "o2": 1, "glucose": 2}


# ---------------------------------------------------------------------- encodings
def encode(hr, sysbp, o2, glucose, abx=0, vaso=0, vent=0, diabetic=None):
    """State index of the given levels (scalars or broadcastable integer arrays).

    Observed index = hr·240 + sysbp·80 + o2·40 + glucose·8 + abx·4 + vaso·2 + vent (0 … 719); with
    ``diabetic`` given, the full index diabetic·720 + observed index (0 … 1439). Out-of-range levels
    raise ValueError naming the variable.
    """
    vals = {"hr": hr, "sysbp": sysbp, "o2": o2, "glucose": glucose, "abx": abx, "vaso": vaso, "vent": vent}
    idx = 0
    for (name, n), w in zip(SEPSIS_VARIABLES, _WEIGHTS):
        x = np.asarray(vals[name])
        if not np.issubdtype(x.dtype, np.integer) or np.any(x < 0) or np.any(x >= n):
            raise ValueError(f"{name} must be an integer level in [0, {n}), got {vals[name]!r}")
        idx = idx + x.astype(np.int64) * w
    if diabetic is not None:
        d = np.asarray(diabetic)
        if not np.issubdtype(d.dtype, np.integer) and d.dtype != bool or np.any((d != 0) & (d != 1)):
            raise ValueError(f"diabetic must be 0 or 1, got {diabetic!r}")
        idx = idx + d.astype(np.int64) * SEPSIS_N_OBS_STATES
    return idx if np.ndim(idx) else int(idx)


def decode(index, *, full: bool = False) -> dict:
    """Inverse of :func:`encode`: dict of integer arrays (or ints) per variable; ``full=True`` reads a
    0 … 1439 index and adds ``"diabetic"``."""
    i = np.asarray(index)
    n_max = 2 * SEPSIS_N_OBS_STATES if full else SEPSIS_N_OBS_STATES
    if not np.issubdtype(i.dtype, np.integer) or np.any(i < 0) or np.any(i >= n_max):
        raise ValueError(f"index must be an integer in [0, {n_max}), got {index!r}")
    out = {}
    if full:
        out["diabetic"] = i // SEPSIS_N_OBS_STATES
        i = i % SEPSIS_N_OBS_STATES
    for (name, n), w in zip(SEPSIS_VARIABLES, _WEIGHTS):
        out[name] = (i // w) % n
    if np.ndim(index) == 0:
        out = {k: int(v) for k, v in out.items()}
    return out


def encode_action(abx, vent, vaso):
    """Action index 4·abx + 2·vent + vaso (the source's order: antibiotics, ventilation, vasopressors)."""
    for name, x in (("abx", abx), ("vent", vent), ("vaso", vaso)):
        if np.any((np.asarray(x) != 0) & (np.asarray(x) != 1)):
            raise ValueError(f"{name} must be 0 or 1, got {x!r}")
    a = 4 * np.asarray(abx, dtype=np.int64) + 2 * np.asarray(vent, dtype=np.int64) + np.asarray(vaso, dtype=np.int64)
    return a if np.ndim(a) else int(a)


def decode_action(action) -> dict:
    """Inverse of :func:`encode_action`: ``{"abx", "vent", "vaso"}``."""
    a = np.asarray(action)
    if not np.issubdtype(a.dtype, np.integer) or np.any(a < 0) or np.any(a >= SEPSIS_N_ACTIONS):
        raise ValueError(f"action must be an integer in [0, 8), got {action!r}")
    out = {"abx": a // 4, "vent": (a // 2) % 2, "vaso": a % 2}
    return {k: int(v) for k, v in out.items()} if np.ndim(action) == 0 else out


def sepsis_outcome(index=None) -> np.ndarray:
    """Outcome of observed states (default all 720): −1 death (≥ 3 abnormal vitals), +1 discharge (all
    vitals normal, treatments off), 0 otherwise."""
    idx = np.arange(SEPSIS_N_OBS_STATES) if index is None else np.asarray(index)
    d = decode(idx % SEPSIS_N_OBS_STATES)
    n_abn = sum((np.asarray(d[k]) != v).astype(int) for k, v in _NORMAL.items())
    on = (np.asarray(d["abx"]) + np.asarray(d["vaso"]) + np.asarray(d["vent"])) > 0
    return np.where(n_abn >= 3, -1, np.where((n_abn == 0) & ~on, 1, 0)).astype(np.int64)


def _check_fraction(f) -> float:
    try:
        f = float(f)
    except (TypeError, ValueError):
        raise ValueError(f"diabetes_fraction must be a number in [0, 1], got {f!r}") from None
    if not np.isfinite(f) or not 0.0 <= f <= 1.0:
        raise ValueError(f"diabetes_fraction must lie in [0, 1], got {f!r}")
    return f


def sepsis_initial(diabetic: int) -> np.ndarray:
    """Initial law (720,) of a (non-)diabetic patient, conditioned on a non-absorbing state (exact)."""
    if diabetic not in (0, 1):
        raise ValueError(f"diabetic must be 0 or 1, got {diabetic!r}")
    p_hr = np.array([0.25, 0.5, 0.25])
    p_o2 = np.array([0.2, 0.8])
    p_glu = np.array([0.01, 0.05, 0.15, 0.6, 0.19]) if diabetic else np.array([0.05, 0.15, 0.6, 0.15, 0.05])
    mu = np.zeros(SEPSIS_N_OBS_STATES)
    h, b, o, g = np.meshgrid(np.arange(3), np.arange(3), np.arange(2), np.arange(5), indexing="ij")
    idx = encode(h.ravel(), b.ravel(), o.ravel(), g.ravel())
    mu[idx] = (p_hr[h] * p_hr[b] * p_o2[o] * p_glu[g]).ravel()
    mu[sepsis_outcome() != 0] = 0.0
    return mu / mu.sum()


# ---------------------------------------------------------------------- exact enumeration
def _branch(outcomes, var, rule):
    """Apply a stochastic rule to one variable of every outcome: ``rule(value) -> [(p, new), ...]``."""
    out = []
    for p, st in outcomes:
        for q, new in rule(st[var]):
            if q > 0.0:
                s2 = dict(st)
                s2[var] = new
                out.append((p * q, s2))
    return out


def _fluct(lo, hi, p_each):
    return lambda x: [(p_each, max(lo, x - 1)), (p_each, min(hi, x + 1)), (1.0 - 2 * p_each, x)]


def _enumerate_step(st: dict, act: dict, diabetic: int, source_glucose_cap: bool):
    """All outcomes [(prob, next-state dict)] of one step from state ``st`` under ``act``."""
    outs = [(1.0, dict(st))]
    free = {"hr": True, "sysbp": True, "o2": True, "glucose": True}
    # 1. antibiotics
    if act["abx"]:
        outs = _branch(outs, "hr", lambda x: [(0.5, 1), (0.5, 2)] if x == 2 else [(1.0, x)])
        outs = _branch(outs, "sysbp", lambda x: [(0.5, 1), (0.5, 2)] if x == 2 else [(1.0, x)])
        free["hr"] = free["sysbp"] = False
    elif st["abx"]:
        outs = _branch(outs, "hr", lambda x: [(0.1, 2), (0.9, 1)] if x == 1 else [(1.0, x)])
        outs = _branch(outs, "sysbp", lambda x: [(0.1, 2), (0.9, 1)] if x == 1 else [(1.0, x)])
        free["hr"] = free["sysbp"] = False
    # 2. ventilation
    if act["vent"]:
        outs = _branch(outs, "o2", lambda x: [(0.7, 1), (0.3, 0)] if x == 0 else [(1.0, x)])
        free["o2"] = False
    elif st["vent"]:
        outs = _branch(outs, "o2", lambda x: [(0.1, 0), (0.9, 1)] if x == 1 else [(1.0, x)])
        free["o2"] = False
    # 3. vasopressors
    if act["vaso"]:
        if not diabetic:
            outs = _branch(outs, "sysbp", lambda x: [(0.7, x + 1), (0.3, x)] if x < 2 else [(1.0, x)])
        else:
            outs = _branch(outs, "sysbp", lambda x: ([(0.9, 2), (0.1, 1)] if x == 1 else
                                                     [(0.5, 1), (0.4, 2), (0.1, 0)] if x == 0 else [(1.0, x)]))
            outs = _branch(outs, "glucose", lambda x: [(0.5, min(4, x + 1)), (0.5, x)])
        free["sysbp"] = free["glucose"] = False
    elif st["vaso"]:
        p = 0.05 if diabetic else 0.1
        outs = _branch(outs, "sysbp", lambda x: [(p, max(0, x - 1)), (1.0 - p, x)])
        free["sysbp"] = False
    # 4. fluctuations
    if free["hr"]:
        outs = _branch(outs, "hr", _fluct(0, 2, 0.1))
    if free["sysbp"]:
        outs = _branch(outs, "sysbp", _fluct(0, 2, 0.1))
    if free["o2"]:
        outs = _branch(outs, "o2", _fluct(0, 1, 0.1))
    if free["glucose"]:
        if diabetic:
            outs = _branch(outs, "glucose", _fluct(0, 4, 0.3))
        else:
            cap = 1 if source_glucose_cap else 4
            outs = _branch(outs, "glucose", lambda x: [(0.1, max(0, x - 1)), (0.1, min(cap, x + 1)), (0.8, x)])
    for p, s2 in outs:
        s2["abx"], s2["vent"], s2["vaso"] = act["abx"], act["vent"], act["vaso"]
    return outs


_CACHE: dict = {}


def sepsis_transition_matrix(diabetic: int, *, source_glucose_cap: bool = True) -> sp.csr_matrix:
    """Exact transition matrix ``(720*8, 720)`` CSR (row s*8 + a) of a (non-)diabetic patient, built by
    enumerating every state's outcomes (no simulation). Absorbing (death / discharge) rows are
    self-loops. Cached per argument pair (treat the returned matrix as read-only)."""
    if diabetic not in (0, 1):
        raise ValueError(f"diabetic must be 0 or 1, got {diabetic!r}")
    key = (int(diabetic), bool(source_glucose_cap))
    if key in _CACHE:
        return _CACHE[key]
    S, A = SEPSIS_N_OBS_STATES, SEPSIS_N_ACTIONS
    absorbing = sepsis_outcome() != 0
    rows, cols, vals = [], [], []
    names = [n for n, _ in SEPSIS_VARIABLES]
    weights = [int(w) for w in _WEIGHTS]
    for s in range(S):
        st = {n: (s // w) % k for n, w, (_, k) in zip(names, weights, SEPSIS_VARIABLES)}  # plain ints: fast
        for a in range(A):
            r = s * A + a
            if absorbing[s]:
                rows.append(r), cols.append(s), vals.append(1.0)
                continue
            act = {"abx": a // 4, "vent": (a // 2) % 2, "vaso": a % 2}
            for p, s2 in _enumerate_step(st, act, diabetic, source_glucose_cap):
                rows.append(r)
                cols.append(sum(s2[n] * w for n, w in zip(names, weights)))
                vals.append(p)
    M = sp.csr_matrix((vals, (rows, cols)), shape=(S * A, S))
    M.sum_duplicates()
    _CACHE[key] = M
    return M


def sepsis_mdp(diabetes_fraction: float = 0.2, gamma: float = 0.99, *, observe_diabetes: bool = False,
               source_glucose_cap: bool = True) -> TabularMDP:
    r"""The sepsis-style MDP as a sparse :class:`TabularMDP` (see the module docstring).

    ``observe_diabetes=False``: 720 states, kernel :math:`P_f = (1-f)P_0 + fP_1`, initial law
    :math:`\mu_0 = (1-f)\mu_0^{(0)} + f\mu_0^{(1)}`. ``observe_diabetes=True``: 1440 states (flag in
    the state, block-diagonal kernel), μ0 weights the two blocks by 1 − f and f.
    Rewards r(s, a) = Σ_{s'} P(s'|s,a)·outcome(s') (entering death −1, discharge +1); absorbing
    states are terminal (value 0). γ = 1 cannot be solved without a finite horizon (a policy that
    keeps a treatment on forever need not reach a terminal state; ``solve`` raises ValueError).
    """
    f = _check_fraction(diabetes_fraction)
    gamma = check_gamma(gamma)
    P0 = sepsis_transition_matrix(0, source_glucose_cap=source_glucose_cap)
    P1 = sepsis_transition_matrix(1, source_glucose_cap=source_glucose_cap)
    out = sepsis_outcome().astype(np.float64)
    term = out != 0
    mu0, mu1 = sepsis_initial(0), sepsis_initial(1)
    S, A = SEPSIS_N_OBS_STATES, SEPSIS_N_ACTIONS
    if observe_diabetes:
        # (2S*A, 2S): block d holds rows (d*S + s)*A + a
        P = sp.block_diag([P0, P1], format="csr")
        outcome = np.concatenate([out, out])
        terminal = np.concatenate([term, term])
        initial = np.concatenate([(1 - f) * mu0, f * mu1])
    else:
        P = ((1.0 - f) * P0 + f * P1).tocsr()
        P.eliminate_zeros()
        outcome, terminal, initial = out, term, (1 - f) * mu0 + f * mu1
    R = np.asarray(P @ outcome).reshape(-1, A)
    R[terminal] = 0.0
    mdp = TabularMDP(P, R, gamma, terminal=terminal, initial=initial)
    mdp.diabetes_fraction = f
    mdp.observe_diabetes = bool(observe_diabetes)
    return mdp


# ---------------------------------------------------------------------- sampler
def sepsis_step(states, actions, diabetic, rng, *, source_glucose_cap: bool = True) -> np.ndarray:
    """One vectorised step of the simulator by uniform draws, stage by stage (independent of the
    enumeration above; used to check it). ``states``, ``actions``, ``diabetic``: integer arrays
    ``(n,)`` (observed indices 0 … 719, actions 0 … 7, flags 0/1); ``rng``: numpy Generator.
    Absorbing states stay put. Returns next observed indices ``(n,)``."""
    s = np.asarray(states, dtype=np.int64)
    a = np.asarray(actions, dtype=np.int64)
    d = np.asarray(diabetic, dtype=np.int64)
    if s.ndim != 1 or a.shape != s.shape or d.shape != s.shape:
        raise ValueError(f"states, actions, diabetic must be 1-D of equal length, got {s.shape}, {a.shape}, {d.shape}")
    if np.any((s < 0) | (s >= SEPSIS_N_OBS_STATES)):
        raise ValueError("states must lie in [0, 720)")
    if np.any((a < 0) | (a >= SEPSIS_N_ACTIONS)):
        raise ValueError("actions must lie in [0, 8)")
    if np.any((d != 0) & (d != 1)):
        raise ValueError("diabetic must be 0 or 1")
    st = decode(s)
    hr, bp, o2, glu = (st[k].copy() for k in ("hr", "sysbp", "o2", "glucose"))
    act = decode_action(a)
    n = s.size
    U = lambda: rng.random(n)  # noqa: E731  one fresh uniform per patient per draw, like the source
    diab = d == 1
    f_hr = np.ones(n, bool)
    f_bp = np.ones(n, bool)
    f_o2 = np.ones(n, bool)
    f_glu = np.ones(n, bool)
    # antibiotics
    on, was = act["abx"] == 1, (act["abx"] == 0) & (st["abx"] == 1)
    u1, u2 = U(), U()
    hr = np.where(on & (hr == 2) & (u1 < 0.5), 1, hr)
    bp = np.where(on & (bp == 2) & (u2 < 0.5), 1, bp)
    u1, u2 = U(), U()
    hr = np.where(was & (hr == 1) & (u1 < 0.1), 2, hr)
    bp = np.where(was & (bp == 1) & (u2 < 0.1), 2, bp)
    f_hr &= ~(on | was)
    f_bp &= ~(on | was)
    # ventilation
    on, was = act["vent"] == 1, (act["vent"] == 0) & (st["vent"] == 1)
    u = U()
    o2 = np.where(on & (o2 == 0) & (u < 0.7), 1, o2)
    u = U()
    o2 = np.where(was & (o2 == 1) & (u < 0.1), 0, o2)
    f_o2 &= ~(on | was)
    # vasopressors
    on, was = act["vaso"] == 1, (act["vaso"] == 0) & (st["vaso"] == 1)
    u = U()
    nd = on & ~diab
    bp = np.where(nd & (u < 0.7), np.minimum(bp + 1, 2), bp)
    dd = on & diab
    u = U()
    bp = np.where(dd & (bp == 1) & (u < 0.9), 2, np.where(dd & (bp == 0) & (u < 0.5), 1,
                                                          np.where(dd & (bp == 0) & (u < 0.9), 2, bp)))
    u = U()
    glu = np.where(dd & (u < 0.5), np.minimum(glu + 1, 4), glu)
    u = U()
    p_off = np.where(diab, 0.05, 0.1)
    bp = np.where(was & (u < p_off), np.maximum(bp - 1, 0), bp)
    f_bp &= ~(on | was)
    f_glu &= ~on
    # fluctuations
    def fluct(x, free, hi, p_each, cap_up):
        u = U()
        down = free & (u < p_each)
        up = free & (u >= p_each) & (u < 2 * p_each)
        return np.where(down, np.maximum(x - 1, 0), np.where(up, np.minimum(x + 1, cap_up), x))
    hr = fluct(hr, f_hr, 2, 0.1, 2)
    bp = fluct(bp, f_bp, 2, 0.1, 2)
    o2 = fluct(o2, f_o2, 1, 0.1, 1)
    cap_nd = 1 if source_glucose_cap else 4
    g_nd = fluct(glu, f_glu & ~diab, 4, 0.1, cap_nd)
    g_d = fluct(glu, f_glu & diab, 4, 0.3, 4)
    glu = np.where(diab, g_d, g_nd)
    nxt = encode(hr, bp, o2, glu, act["abx"], act["vaso"], act["vent"])
    nxt = np.atleast_1d(nxt)
    absorbing = sepsis_outcome(s) != 0
    return np.where(absorbing, s, nxt)


def sepsis_simulate(policy: np.ndarray, n_patients: int, horizon: int, *, diabetes_fraction: float = 0.2,
                    seed: int = 0, source_glucose_cap: bool = True):
    """Simulate ``n_patients`` episodes of at most ``horizon`` steps under an observed-state policy
    ``(720, 8)``, each patient's diabetes flag drawn once (the source's POMDP; not the mixture MDP).

    Returns ``(states (n, horizon+1), actions (n, horizon), rewards (n, horizon), diabetic (n,))``;
    after absorption the state repeats, the action is −1 and the reward 0.
    """
    pol = np.asarray(policy, dtype=np.float64)
    if pol.shape != (SEPSIS_N_OBS_STATES, SEPSIS_N_ACTIONS):
        raise ValueError(f"policy must have shape (720, 8), got {pol.shape}")
    if np.any(pol < 0) or np.any(np.abs(pol.sum(axis=1) - 1) > 1e-9):
        raise ValueError("policy rows must be probability vectors")
    n = check_int(n_patients, "n_patients")
    H = check_int(horizon, "horizon")
    f = _check_fraction(diabetes_fraction)
    rng = np.random.default_rng(seed)
    diab = (rng.random(n) < f).astype(np.int64)
    mu = np.stack([sepsis_initial(0), sepsis_initial(1)])
    cdf0 = np.cumsum(mu, axis=1)
    s = np.minimum((rng.random(n)[:, None] > cdf0[diab]).sum(axis=1), SEPSIS_N_OBS_STATES - 1)
    cdf = np.cumsum(pol, axis=1)
    S_ = np.empty((n, H + 1), np.int64)
    A_ = np.full((n, H), -1, np.int64)
    R_ = np.zeros((n, H))
    S_[:, 0] = s
    alive = np.ones(n, bool)
    for t in range(H):
        a = np.minimum((rng.random(n)[:, None] > cdf[s]).sum(axis=1), SEPSIS_N_ACTIONS - 1)
        s2 = sepsis_step(s, a, diab, rng, source_glucose_cap=source_glucose_cap)
        A_[alive, t] = a[alive]
        R_[alive, t] = sepsis_outcome(s2[alive])
        s = np.where(alive, s2, s)
        alive &= sepsis_outcome(s) == 0
        S_[:, t + 1] = s
    return S_, A_, R_, diab
