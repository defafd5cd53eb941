r"""Built-in exact tasks: ``solve`` and ``evaluate`` of the env families, and the numba batcher.

Env families (parameter ``env``) and their parameters (defaults in brackets):

* ``garnet`` — :func:`mdpsandbox.garnet`: n_states [20], n_actions [4], branching [3], reward_scale [1.0]
* ``chain`` — :func:`mdpsandbox.chain`: n_states [10], slip [0.0], reward_left [0.01], reward_right [1.0]
* ``gridworld`` — :func:`mdpsandbox.gridworld`: height [5], width [5], slip [0.1], step_reward [-0.01],
  goal_reward [1.0]
* ``bandit`` — :func:`mdpsandbox.bandit`: n_arms [5]
* ``token`` — :meth:`mdpsandbox.TokenMDP.random`: vocab_size [3], horizon [4], reward ["terminal"],
  ref ["random"], eos [None], logit_scale [1.0], offset_scale [0.0], p_success [0.3], n_prompts [1]
* ``bernoulli_tree`` — :func:`mdpsandbox.bernoulli_tree` (0/1 leaf rewards): vocab_size [3], horizon [4],
  p_success [0.3], ref ["random"], logit_scale [1.0]

Common: ``gamma`` (default: garnet/chain 0.9, gridworld 0.95, bandit 0.0, token trees 1.0) and
``seed`` [0], the env generator's seed (so a cell reproduces ``mdpsandbox.garnet(..., seed=seed)``).
Regulariser: ``beta`` (KL; tabular envs use the uniform reference policy, token trees their own
π_ref) and/or ``temperature`` (entropy); neither = hard control (docs/math.md §1–§4).
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from .registry import Param, task

__all__ = ["ENV_PARAMS", "make_env", "solve_task", "evaluate_task", "SolveBatcher", "garnet_arrays"]

ENV_PARAMS = {
    "garnet": {"n_states": 20, "n_actions": 4, "branching": 3, "reward_scale": 1.0},
    "chain": {"n_states": 10, "slip": 0.0, "reward_left": 0.01, "reward_right": 1.0},
    "gridworld": {"height": 5, "width": 5, "slip": 0.1, "step_reward": -0.01, "goal_reward": 1.0},
    "bandit": {"n_arms": 5},
    "token": {"vocab_size": 3, "horizon": 4, "reward": "terminal", "ref": "random", "eos": None,
              "logit_scale": 1.0, "offset_scale": 0.0, "p_success": 0.3, "n_prompts": 1},
    "bernoulli_tree": {"vocab_size": 3, "horizon": 4, "p_success": 0.3, "ref": "random", "logit_scale": 1.0},
}
DEFAULT_GAMMA = {"garnet": 0.9, "chain": 0.9, "gridworld": 0.95, "bandit": 0.0, "token": 1.0, "bernoulli_tree": 1.0}
TABULAR = ("garnet", "chain", "gridworld", "bandit")
ENVS = tuple(ENV_PARAMS)

_F, _I, _S = (float,), (int,), (str,)
ENV_SCHEMA = {
    "env": Param(_S, "env family", choices=ENVS),
    "gamma": Param(_F, "discount in [0, 1]", optional=True),
    "seed": Param(_I, "seed of the env generator"),
    "n_states": Param(_I, "garnet/chain: number of states"),
    "n_actions": Param(_I, "garnet: number of actions"),
    "branching": Param(_I, "garnet: successors per (s, a)"),
    "reward_scale": Param(_F, "garnet: r ~ U[0, reward_scale]"),
    "slip": Param(_F, "chain/gridworld: slip probability"),
    "reward_left": Param(_F, "chain: reward at the left end"),
    "reward_right": Param(_F, "chain: reward at the right end"),
    "height": Param(_I, "gridworld: rows"),
    "width": Param(_I, "gridworld: columns"),
    "step_reward": Param(_F, "gridworld: reward per step"),
    "goal_reward": Param(_F, "gridworld: reward on reaching the goal"),
    "n_arms": Param(_I, "bandit: number of arms"),
    "vocab_size": Param(_I, "token: vocabulary size V"),
    "horizon": Param(_I, "token: maximum length H"),
    "reward": Param(_S, "token: reward kind", choices=("terminal", "dense", "bernoulli")),
    "ref": Param(_S, "token: reference LM", choices=("random", "uniform", "ngram")),
    "eos": Param(_I, "token: EOS token index", optional=True),
    "logit_scale": Param(_F, "token: std of the reference logits"),
    "offset_scale": Param(_F, "token: std of the per-node logit offset"),
    "p_success": Param(_F, "token (bernoulli)/bernoulli_tree: success probability"),
    "n_prompts": Param(_I, "token: number of prompts"),
}
REG_SCHEMA = {
    "beta": Param(_F, "KL coefficient β > 0 (None: no KL)", optional=True),
    "temperature": Param(_F, "entropy temperature τ > 0 (None: no entropy)", optional=True),
}
_COMMON = ("env", "gamma", "seed")


def _check_env_params(names, values):
    """Every parameter named must belong to every env family the sweep uses."""
    envs = values.get("env", ["garnet"])
    env_names = [n for n in names if n in ENV_SCHEMA and n not in _COMMON]
    for e in envs:
        bad = [n for n in env_names if n not in ENV_PARAMS[e]]
        if bad:
            raise ValueError(f"env {e!r} has no parameter(s) {bad}; its parameters: "
                             f"{sorted(ENV_PARAMS[e]) + list(_COMMON)} (vary env families with zipped axes)")


def make_env(env: str = "garnet", gamma=None, seed: int = 0, **kw):
    """Build an env family member (see the module docstring) with its generator's own validation."""
    import mdpsandbox as ms

    if env not in ENV_PARAMS:
        raise ValueError(f"env must be one of {list(ENV_PARAMS)}, got {env!r}")
    bad = sorted(set(kw) - set(ENV_PARAMS[env]))
    if bad:
        raise ValueError(f"env {env!r} has no parameter(s) {bad}; valid: {sorted(ENV_PARAMS[env])}")
    p = {**ENV_PARAMS[env], **kw}
    g = DEFAULT_GAMMA[env] if gamma is None else gamma
    if env == "garnet":
        return ms.garnet(p["n_states"], p["n_actions"], p["branching"], gamma=g, seed=seed,
                         reward_scale=p["reward_scale"], sparse=False)
    if env == "chain":
        return ms.chain(p["n_states"], g, slip=p["slip"], reward_left=p["reward_left"],
                        reward_right=p["reward_right"], seed=seed)
    if env == "gridworld":
        return ms.gridworld(p["height"], p["width"], slip=p["slip"], step_reward=p["step_reward"],
                            goal_reward=p["goal_reward"], gamma=g, seed=seed)
    if env == "bandit":
        return ms.bandit(p["n_arms"], gamma=g, seed=seed)
    if env == "token":
        return ms.TokenMDP.random(p["vocab_size"], p["horizon"], reward=p["reward"], ref=p["ref"], seed=seed,
                                  gamma=g, eos=p["eos"], n_prompts=p["n_prompts"], logit_scale=p["logit_scale"],
                                  offset_scale=p["offset_scale"], p_success=p["p_success"])
    return ms.TokenMDP.random(p["vocab_size"], p["horizon"], reward="bernoulli", ref=p["ref"], seed=seed, gamma=g,
                              logit_scale=p["logit_scale"], p_success=p["p_success"])


def _split(params: dict):
    envp = {k: v for k, v in params.items() if k in ENV_SCHEMA}
    rest = {k: v for k, v in params.items() if k not in ENV_SCHEMA}
    return envp, rest


def _ref_policy(env, beta):
    from ...envs import TabularMDP

    if beta is None or not isinstance(env, TabularMDP):
        return None
    return np.full((env.n_states, env.n_actions), 1.0 / env.n_actions)


def _value_at_start(env, v) -> float:
    from ...envs import TabularMDP

    if isinstance(env, TabularMDP):
        return float(env.initial @ v)
    return float(np.mean(np.asarray(v)[..., 0]))


def _reference_method(env, used: str) -> str:
    from ...envs import TabularMDP

    if isinstance(env, TabularMDP):
        return "vi" if used == "pi" else "pi"
    return "pi" if used == "backward" else "backward"


def _reference_values(env, beta, temperature, used: str):
    """V* by a different exact method (PI ↔ VI; backward induction ↔ PI on the unrolled tree), at
    the tightest tolerance above float64 round-off: returns (v_ref, method, certified bound of v_ref)."""
    import mdpsandbox as ms

    m = _reference_method(env, used)
    for tol in (1e-12, 1e-10, 1e-8):
        try:
            sol = ms.solve(env, beta=beta, temperature=temperature, ref_policy=_ref_policy(env, beta), method=m,
                           tol=tol)
            return sol.v, m, float(sol.bound)
        except ValueError as exc:  # VI refuses a tolerance below round-off: loosen it
            if "round-off" not in str(exc) or tol == 1e-8:
                raise


SOLVE_SCHEMA = {**ENV_SCHEMA, **REG_SCHEMA,
                "method": Param(_S, "solver", choices=("auto", "vi", "pi", "backward")),
                "tol": Param(_F, "certified tolerance of iterative solvers"),
                "reference": Param((bool,), "also compute error_ref = ‖V − V_ref‖∞ against a different exact method"),
                "batch": Param((bool,), "solve eligible cells (garnet/chain, γ < 1, vi/pi/auto) with solve_batch")}
SOLVE_METRICS = ("value_initial", "residual", "bound", "iterations", "converged", "method_used", "error_ref",
                 "ref_bound")


def solve_task(*, env: str = "garnet", gamma=None, seed: int = 0, beta=None, temperature=None,
               method: str = "auto", tol: float = 1e-9, reference: bool = False, batch: bool = True, cell_seed=None,
               **env_kw) -> dict:
    r"""Exact solve of one env (:func:`mdpsandbox.solve`; hard, entropy τ or KL β).

    Metrics: ``value_initial`` (μ0·V* tabular, mean root value token), ``residual``, ``bound``
    (certified ‖V − V*‖∞), ``iterations``, ``converged``, ``method_used``; with ``reference=True``
    also ``error_ref`` = ‖V − V_ref‖∞ against a different exact method (PI ↔ VI at the tightest tol
    above round-off, backward induction ↔ PI on the unrolled tree) and ``ref_bound``, the reference's
    certified bound: ``error_ref ≤ bound + ref_bound`` is the check.
    """
    import mdpsandbox as ms

    mdp = make_env(env, gamma, seed, **env_kw)
    sol = ms.solve(mdp, beta=beta, temperature=temperature, ref_policy=_ref_policy(mdp, beta), method=method, tol=tol)
    out = {"value_initial": _value_at_start(mdp, sol.v), "residual": float(sol.residual), "bound": float(sol.bound),
           "iterations": int(sol.iterations), "converged": bool(sol.converged), "method_used": sol.method}
    if reference:
        vref, _, rb = _reference_values(mdp, beta, temperature, sol.method)
        out["error_ref"] = float(np.max(np.abs(np.asarray(sol.v) - np.asarray(vref))))
        out["ref_bound"] = rb
    return out


def garnet_arrays(n_states: int, n_actions: int, branching: int, seed: int, reward_scale: float = 1.0):
    """Dense ``(P (S, A, S), R (S, A))`` of ``mdpsandbox.garnet(S, A, b, seed=seed, reward_scale=…)``,
    drawn with the same generator calls but without building the TabularMDP (the batch path's
    per-cell cost; tests check equality with :func:`mdpsandbox.garnet`)."""
    S, A, b = n_states, n_actions, branching
    rng = np.random.default_rng(seed)
    cols = np.argsort(rng.random((S * A, S)), axis=1)[:, :b]
    cuts = np.sort(rng.random((S * A, b - 1)), axis=1)
    probs = np.diff(np.concatenate([np.zeros((S * A, 1)), cuts, np.ones((S * A, 1))], axis=1), axis=1)
    R = rng.random((S, A)) * reward_scale
    P = np.zeros((S * A, S))
    P[np.arange(S * A)[:, None], cols] = probs
    return P.reshape(S, A, S), R


class _EnvCache(dict):
    """A dict of env key -> (P, R) bounded to ``max_bytes`` (oldest entries dropped first)."""

    def __init__(self, max_bytes: int = 256 * 2**20):
        super().__init__()
        self.max_bytes, self.nbytes = max_bytes, 0

    def __setitem__(self, key, value):
        size = sum(a.nbytes for a in value)
        while self and self.nbytes + size > self.max_bytes:
            old = next(iter(self))
            self.nbytes -= sum(a.nbytes for a in dict.pop(self, old))
        dict.__setitem__(self, key, value)
        self.nbytes += size


ENV_CACHE = _EnvCache()


class SolveBatcher:
    """Groups ``solve`` cells with equal shapes and regulariser into one :func:`mdpsandbox.solve_batch`.

    Eligible cells: env garnet (S ≤ 4096) or chain, 0 ≤ γ < 1, method vi/pi/auto (auto → pi),
    ``batch=True``. A cell's numbers do not depend on which other cells share its batch
    (solve_batch solves each MDP independently), so tables are identical for every chunking.
    """

    def key(self, params: dict):
        env = params.get("env", "garnet")
        if not params.get("batch", True) or env not in ("garnet", "chain"):
            return None
        g = params.get("gamma")
        g = DEFAULT_GAMMA[env] if g is None else g
        method = params.get("method", "auto")
        if not 0 <= g < 1 or method not in ("auto", "vi", "pi"):
            return None
        if env == "garnet":
            S, A = params.get("n_states", 20), params.get("n_actions", 4)
            if S > 4096:
                return None
        else:
            S, A = params.get("n_states", 10), 2
        return (env, S, A, params.get("beta"), params.get("temperature"), "pi" if method == "auto" else method,
                params.get("tol", 1e-9), bool(params.get("reference", False)))

    def env_key(self, params: dict):
        """Cells sharing this key share P and R (γ does not change them): generated once per chunk."""
        envp, _ = _split(params)
        envp.pop("gamma", None)
        return tuple(sorted(envp.items(), key=lambda kv: kv[0]))

    def run(self, cells: list, cache: Optional[dict] = None) -> list:
        """Metrics of ``cells`` (all with the same :meth:`key`) from one solve_batch call, one dict per
        cell (with ``wall_s``, the call's wall time / number of cells): :meth:`run_columns` as rows."""
        cols, wall = self.run_columns(cells, cache)
        names = list(cols)
        lists = [cols[n].tolist() if isinstance(cols[n], np.ndarray) else list(cols[n]) for n in names]
        return [{**dict(zip(names, vals)), "wall_s": wall} for vals in zip(*lists)]

    def run_columns(self, cells: list, cache: Optional[dict] = None):
        """``(columns, wall)``: the metrics of ``cells`` (all with the same :meth:`key`) from one
        solve_batch call as columns — name -> float64 / int64 / bool array or list of str, one entry
        per cell — and the call's wall time per cell. Generated (P, R) are kept in ``cache``
        (default: this process's bounded :data:`ENV_CACHE`), so cells that differ only in γ or the
        regulariser share one env draw."""
        import mdpsandbox as ms

        t0 = time.perf_counter()
        p0 = cells[0]
        env, S, A, beta, temp, method, tol, reference = self.key(p0)
        if len(cells) > 1 and self.key(cells[-1]) != self.key(p0):  # callers group by key (cheap check)
            raise ValueError("SolveBatcher.run needs cells of one batch key")
        cache = ENV_CACHE if cache is None else cache
        B = len(cells)
        P = np.empty((B, S, A, S))
        R = np.empty((B, S, A))
        gam = np.empty(B)
        for i, p in enumerate(cells):
            ek = self.env_key(p)
            if ek not in cache:
                envp, _ = _split(p)
                envp.pop("gamma", None)
                if env == "garnet":
                    kw = {**ENV_PARAMS["garnet"], **{k: v for k, v in envp.items() if k in ENV_PARAMS["garnet"]}}
                    cache[ek] = garnet_arrays(kw["n_states"], kw["n_actions"], kw["branching"], envp.get("seed", 0),
                                              kw["reward_scale"])
                else:
                    m = make_env(**envp)
                    cache[ek] = (m.dense_P(), m.R)
            P[i], R[i] = cache[ek]
            g = p.get("gamma")
            gam[i] = DEFAULT_GAMMA[env] if g is None else g
        ref = np.full((S, A), 1.0 / A) if beta is not None else None
        if B == 1:
            # solve_batch with B = 1 can differ from B ≥ 2 in the last bits (measured; B ≥ 2 results do
            # not depend on the batch's other members): pad to two so a cell's numbers never depend on
            # how many cells share its chunk
            P, R, gam = np.concatenate([P, P]), np.concatenate([R, R]), np.concatenate([gam, gam])
        sol = ms.solve_batch(P, R, gam, temperature=temp, beta=beta, ref_policy=ref, method=method, tol=tol)
        if env == "garnet":
            v0 = sol.v.mean(axis=1)  # garnet's initial distribution is uniform
        else:
            v0 = sol.v[:, 0]  # chain starts in state 0
        res = sol.residual
        # certified ‖V − V*‖∞ as in solve: VI γ‖V_{k+1} − V_k‖/(1−γ); PI ‖TV − V‖/(1−γ)
        bound = (gam * res if method == "vi" else res) / (1.0 - gam)
        n = len(cells)  # B = 1 was padded to two rows: keep the first n
        out = {"value_initial": np.array(v0[:n], dtype=np.float64),
               "residual": np.array(res[:n], dtype=np.float64),
               "bound": np.array(bound[:n], dtype=np.float64),
               "iterations": np.array(sol.iterations[:n], dtype=np.int64),
               "converged": np.array(sol.converged[:n], dtype=bool),
               "method_used": [f"{method}_batch"] * n}
        if reference:
            err, rbs = np.empty(n), np.empty(n)
            for i, p in enumerate(cells):
                envp, _ = _split(p)
                mdp = make_env(**envp)
                vref, _, rb = _reference_values(mdp, beta, temp, method)
                err[i] = np.max(np.abs(sol.v[i] - vref))
                rbs[i] = rb
            out["error_ref"], out["ref_bound"] = err, rbs
        return out, (time.perf_counter() - t0) / n


def _check_solve(names, values):
    _check_env_params(names, values)
    for n in ("beta", "temperature"):
        for v in values.get(n, []):
            if v is not None and not v > 0:
                raise ValueError(f"task 'solve': parameter {n!r} must be > 0 or None, got {v!r}")
    for v in values.get("gamma", []):
        if v is not None and not 0 <= v <= 1:
            raise ValueError(f"task 'solve': parameter 'gamma' must lie in [0, 1], got {v!r}")


task("solve", params=SOLVE_SCHEMA, batcher=SolveBatcher(), check=_check_solve, metrics=SOLVE_METRICS)(solve_task)


EVALUATE_SCHEMA = {**ENV_SCHEMA, **REG_SCHEMA,
                   "policy": Param(_S, "policy evaluated", choices=("uniform", "random", "optimal", "reference"))}
EVALUATE_METRICS = ("value_initial", "optimal_value_initial", "suboptimality", "kl_initial", "entropy_initial",
                    "residual")


def evaluate_task(*, env: str = "garnet", gamma=None, seed: int = 0, beta=None, temperature=None,
                  policy: str = "uniform", cell_seed=None, **env_kw) -> dict:
    r"""Exact regularised evaluation of a policy (:func:`mdpsandbox.evaluate`, docs/math.md §1–§3):
    :math:`V^\pi = E_\pi\sum_t\gamma^t(r_t - \beta KL_t + \tau H_t)`.

    policy : ``"uniform"``, ``"random"`` (Dirichlet(1) rows drawn from ``cell_seed``), ``"optimal"``
        (π* of the same regulariser) or ``"reference"`` (the token tree's π_ref; uniform on tabular).
    Metrics: ``value_initial`` (V^π at the start), ``optimal_value_initial`` (V*), ``suboptimality``
    = V* − V^π ≥ 0 (0 for π*, the check of the evaluation), ``kl_initial`` and ``entropy_initial``
    at the start state / root, and ``residual`` = ‖T^π V^π − V^π‖∞ computed from the returned Q^π.
    """
    import mdpsandbox as ms
    from ...envs import TabularMDP

    mdp = make_env(env, gamma, seed, **env_kw)
    ref = _ref_policy(mdp, beta)
    sol = ms.solve(mdp, beta=beta, temperature=temperature, ref_policy=ref, tol=1e-11)
    shape = sol.policy.shape
    if policy == "optimal":
        pi = sol.policy
    elif policy == "random":
        pi = np.random.default_rng(cell_seed).dirichlet(np.ones(shape[-1]), size=shape[:-1])
    elif policy == "reference" and not isinstance(mdp, TabularMDP):
        pi = mdp.ref_policy
    else:
        pi = np.full(shape, 1.0 / shape[-1])
    ev = ms.evaluate(mdp, pi, beta=beta, temperature=temperature, ref_policy=ref)
    # T^π V = Σ_a π (Q^π − β log π/π_ref − τ log π): Q^π is recomputed from V by the evaluation itself
    with np.errstate(divide="ignore", invalid="ignore"):
        tv = np.sum(pi * ev.q, axis=-1) - (beta or 0.0) * ev.kl + (temperature or 0.0) * ev.entropy
    resid = np.abs(tv - ev.v)
    if isinstance(mdp, TabularMDP):
        resid = resid[~mdp.terminal]
        s0 = int(np.argmax(mdp.initial))
        kl0, h0 = float(ev.kl[s0]), float(ev.entropy[s0])
    else:
        kl0, h0 = float(np.mean(np.asarray(ev.kl)[..., 0])), float(np.mean(np.asarray(ev.entropy)[..., 0]))
    return {"value_initial": float(ev.value_initial), "optimal_value_initial": float(sol.value_initial),
            "suboptimality": float(sol.value_initial - ev.value_initial), "kl_initial": kl0, "entropy_initial": h0,
            "residual": float(np.max(resid)) if resid.size else 0.0}


def _check_evaluate(names, values):
    _check_solve(names, values)


task("evaluate", params=EVALUATE_SCHEMA, check=_check_evaluate, metrics=EVALUATE_METRICS)(evaluate_task)
