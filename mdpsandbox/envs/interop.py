r"""Converters for users arriving from gymnasium's toy-text environments and QuantEcon's DiscreteDP.

* :func:`from_gymnasium` — a :class:`TabularMDP` from an environment exposing
  ``P[s][a] = [(p, s', r, terminated), ...]`` (FrozenLake, CliffWalking, Taxi, …). A transition
  flagged ``terminated`` goes to one added absorbing sink (state index S), whatever s' it names, so
  termination that depends on the transition (not only on the state) is exact; rewards
  r(s, a, s') are reduced to their expectation r(s, a).
* :class:`GymnasiumEnv` / :func:`to_gymnasium` — a gymnasium-compatible environment view of any
  :class:`TabularMDP` or :class:`TokenMDP` (``reset``/``step`` with a seeded ``numpy`` generator),
  for users' agents; its ``P`` attribute is in the toy-text format, so a round trip is exact.
* :func:`from_quantecon` / :func:`to_quantecon` — QuantEcon's DiscreteDP inputs: product form
  ``R (n, m)``, ``Q (n, m, n)`` or state–action-pair form ``R (L,)``, ``Q (L, n)`` with
  ``s_indices``/``a_indices``; ``-inf`` rewards mark infeasible actions; their ``beta`` is our ``gamma``.

(pymdptoolbox's action-first ``(A, S, S)`` layout: :mod:`mdpsandbox.envs.convert`.)
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp

from .._validate import check_gamma, check_int, check_seed
from .tabular import TabularMDP

__all__ = ["from_gymnasium", "GymnasiumEnv", "to_gymnasium", "from_quantecon", "to_quantecon"]


# ---------------------------------------------------------------------- gymnasium
def _unwrap(env):
    while hasattr(env, "env") and not hasattr(env, "P"):
        env = env.env
    return getattr(env, "unwrapped", env)


def from_gymnasium(env=None, *, P: Optional[dict] = None, n_states: Optional[int] = None,
                   n_actions: Optional[int] = None, initial=None, gamma: float = 1.0) -> TabularMDP:
    r"""A :class:`TabularMDP` with S + 1 states from a toy-text environment's transition table.

    env : a gymnasium environment (wrapped or not) with attributes ``P``, ``observation_space.n``,
        ``action_space.n`` and, if present, ``initial_state_distrib`` (the initial law μ0); or pass
        ``P`` (dict ``P[s][a] = [(p, s', r, terminated), ...]``), ``n_states``, ``n_actions`` and
        ``initial`` directly.
    gamma : discount; γ = 1 is the episodic problem (solve it with :func:`mdpsandbox.solvers.classic.solve_ssp`
        when improper policies exist, as in CliffWalking).

    Every transition with ``terminated=True`` moves to the sink S (absorbing, terminal, value 0);
    duplicate (p, s') entries are summed; r(s, a) = Σ p·r. Raises ValueError for ragged or malformed
    entries, probabilities that do not sum to 1, and states out of range (naming s and a).
    """
    if env is not None:
        if P is not None:
            raise ValueError("pass either env or P, not both")
        base = _unwrap(env)
        if not hasattr(base, "P"):
            raise ValueError(f"env has no transition table P (got {type(base).__name__}); only "
                             "environments exposing P[s][a] = [(p, s', r, terminated)] can be converted")
        P = base.P
        n_states = int(base.observation_space.n)
        n_actions = int(base.action_space.n)
        if initial is None and hasattr(base, "initial_state_distrib"):
            initial = np.asarray(base.initial_state_distrib, dtype=np.float64)
    if P is None or n_states is None or n_actions is None:
        raise ValueError("from_gymnasium needs env, or P with n_states and n_actions")
    S, A = check_int(n_states, "n_states"), check_int(n_actions, "n_actions")
    gamma = check_gamma(gamma)
    rows, cols, vals = [], [], []
    R = np.zeros((S + 1, A))
    for s in range(S):
        if s not in P:
            raise ValueError(f"P has no entry for state {s} (expected states 0..{S - 1})")
        if len(P[s]) != A:
            raise ValueError(f"P[{s}] has {len(P[s])} actions, expected n_actions={A}")
        for a in range(A):
            outs = P[s][a]
            total = 0.0
            try:
                outs = list(outs)
            except TypeError:
                raise ValueError(f"P[{s}][{a}] must be a list of (p, next_state, reward, terminated), got {outs!r}") from None
            for item in outs:
                if not isinstance(item, (tuple, list)) or len(item) != 4:
                    raise ValueError(f"P[{s}][{a}] entries must be (p, next_state, reward, terminated), got {item!r}")
                p, s2, r, term = item
                p, r = float(p), float(r)
                if not (np.isfinite(p) and p >= 0):
                    raise ValueError(f"P[{s}][{a}] has a probability {p} (must be finite and >= 0)")
                if not np.isfinite(r):
                    raise ValueError(f"P[{s}][{a}] has a non-finite reward {r}")
                try:
                    s2i = int(s2)
                except (TypeError, ValueError):
                    raise ValueError(f"P[{s}][{a}] names next state {s2!r}, not an integer") from None
                if s2i != s2:
                    raise ValueError(f"P[{s}][{a}] names next state {s2!r}, not an integer")
                s2 = s2i
                if not 0 <= s2 < S:
                    raise ValueError(f"P[{s}][{a}] names next state {s2}, outside [0, {S})")
                rows.append(s * A + a)
                cols.append(S if term else s2)
                vals.append(p)
                R[s, a] += p * r
                total += p
            if abs(total - 1.0) > 1e-9:
                raise ValueError(f"P[{s}][{a}] probabilities sum to {total:.12g}, not 1")
    for a in range(A):
        rows.append(S * A + a)
        cols.append(S)
        vals.append(1.0)
    P2 = sp.csr_matrix((vals, (rows, cols)), shape=((S + 1) * A, S + 1))
    P2.sum_duplicates()
    if initial is None:
        mu = np.full(S + 1, 1.0 / S)
        mu[S] = 0.0
    else:
        mu0 = np.asarray(initial, dtype=np.float64)
        if mu0.shape != (S,):
            raise ValueError(f"initial must have shape ({S},), got {mu0.shape}")
        mu = np.concatenate([mu0, [0.0]])
    term = np.zeros(S + 1, dtype=bool)
    term[S] = True
    return TabularMDP(P2, R, gamma, terminal=term, initial=mu)


class GymnasiumEnv:
    r"""A gymnasium-compatible environment view of a :class:`TabularMDP` or :class:`TokenMDP`.

    Observations are state indices (tabular) or canonical node indices (token; the episode ends at
    EOS or at length H). ``reset(seed=…)`` draws s0 ~ μ0 (tabular; token: the root of prompt 0, or a
    uniformly drawn prompt); ``step(a)`` returns ``(s', r, terminated, truncated, info)`` with
    s' ~ P(·|s, a) and r = r(s, a) (the expected reward of the pair); a terminal state (token: the
    "after the end" index ``n_nodes``) absorbs with reward 0 and ``terminated=True``. ``truncated`` is
    True at step ``max_episode_steps`` unless that step terminates. ``action`` must be an integer in
    [0, n_actions) (1.5 is refused, not truncated). Spaces are
    ``gymnasium.spaces.Discrete`` when gymnasium is installed. ``P`` is the toy-text table
    ``P[s][a] = [(p, s', r, terminated)]`` of a tabular MDP, so ``from_gymnasium(to_gymnasium(mdp))``
    reproduces it (plus the sink).
    """

    metadata = {"render_modes": []}

    def __init__(self, mdp, *, max_episode_steps: Optional[int] = None):
        from .token import TokenMDP

        if max_episode_steps is not None:
            max_episode_steps = check_int(max_episode_steps, "max_episode_steps")
        self.mdp = mdp
        self._token = isinstance(mdp, TokenMDP)
        if not self._token and not isinstance(mdp, TabularMDP):
            raise ValueError(f"mdp must be a TabularMDP or TokenMDP, got {type(mdp).__name__}")
        if self._token:
            n_obs, n_act = mdp.n_nodes + 1, mdp.vocab_size   # the extra index is "after the end"
        else:
            n_obs, n_act = mdp.n_states, mdp.n_actions
            self._P2 = sp.csr_matrix(mdp.P2)
        try:
            from gymnasium import spaces

            self.observation_space = spaces.Discrete(n_obs)
            self.action_space = spaces.Discrete(n_act)
        except ImportError:  # pragma: no cover - gymnasium is optional
            self.observation_space = self.action_space = None
        self.n_observations, self.n_actions = n_obs, n_act
        self.max_episode_steps = max_episode_steps
        self._rng = np.random.default_rng()
        self._s = None
        self._t = 0
        self._prompt = 0

    @property
    def P(self) -> dict:
        if self._token:
            raise AttributeError("P (the toy-text table) is provided for tabular MDPs only")
        mdp, A = self.mdp, self.mdp.n_actions
        out = {}
        for s in range(mdp.n_states):
            out[s] = {}
            for a in range(A):
                row = self._P2.getrow(s * A + a)
                if mdp.terminal[s]:
                    out[s][a] = [(1.0, s, 0.0, True)]
                else:
                    out[s][a] = [(float(p), int(s2), float(mdp.R[s, a]), bool(mdp.terminal[s2]))
                                 for s2, p in zip(row.indices, row.data) if p > 0]
        return out

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is not None:
            self._rng = np.random.default_rng(check_seed(seed))
        self._t = 0
        if self._token:
            self._prompt = int(self._rng.integers(self.mdp.n_prompts)) if self.mdp.n_prompts > 1 else 0
            self._s = 0
            return 0, {"prompt": self._prompt}
        self._s = int(self._rng.choice(self.mdp.n_states, p=self.mdp.initial))
        return self._s, {}

    def step(self, action):
        if self._s is None:
            raise ValueError("call reset() before step()")
        try:
            a = int(action)
            valid = a == action and 0 <= a < self.n_actions        # 1.5 is not action 1
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(f"action must be an integer in [0, {self.n_actions}), got {action!r}")
        self._t += 1
        truncated = self.max_episode_steps is not None and self._t >= self.max_episode_steps
        if self._token:
            mdp = self.mdp
            if self._s == mdp.n_nodes:     # after the end: absorbing with reward 0, as a terminal state
                return self._s, 0.0, True, False, {"prompt": self._prompt}
            rew = mdp.rewards if mdp.n_prompts == 1 else mdp.rewards[self._prompt]
            r = float(rew[self._s, a])
            level = int(np.searchsorted(mdp.level_start, self._s, side="right") - 1)
            done = (mdp.eos is not None and a == mdp.eos) or level + 1 >= mdp.horizon
            if done:
                self._s = mdp.n_nodes
            else:
                off = self._s - mdp.level_start[level]
                self._s = int(mdp.level_start[level + 1] + off * mdp.vocab_size + a)
            return self._s, r, bool(done), bool(truncated and not done), {"prompt": self._prompt}
        mdp = self.mdp
        s = self._s
        if mdp.terminal[s]:
            return s, 0.0, True, False, {}
        row = self._P2.getrow(s * mdp.n_actions + a)
        # Inverse CDF against the running sum c itself (not data.sum(), whose pairwise rounding can
        # exceed c[-1]): u < 1 gives u·c[-1] < c[-1] in floating point, so the first k with c_k > u·c[-1]
        # exists and has data_k > 0 — a stored zero is never drawn, at either end of the row.
        c = np.cumsum(row.data)
        s2 = int(row.indices[np.searchsorted(c, self._rng.random() * c[-1], side="right")])
        self._s = s2
        return s2, float(mdp.R[s, a]), bool(mdp.terminal[s2]), bool(truncated and not mdp.terminal[s2]), {}

    def close(self):
        pass


def to_gymnasium(mdp, *, max_episode_steps: Optional[int] = None) -> GymnasiumEnv:
    """A :class:`GymnasiumEnv` view of ``mdp`` (TabularMDP or TokenMDP)."""
    return GymnasiumEnv(mdp, max_episode_steps=max_episode_steps)


# ---------------------------------------------------------------------- QuantEcon DiscreteDP
def from_quantecon(R, Q, beta, s_indices=None, a_indices=None):
    r"""A :class:`TabularMDP` and the feasibility mask ``(S, A)`` from QuantEcon DiscreteDP inputs.

    Product form: ``R (n, m)`` (``-inf`` = infeasible action), ``Q (n, m, n)``. State–action-pair
    form: ``R (L,)``, ``Q (L, n)`` (dense or scipy.sparse), ``s_indices (L,)``, ``a_indices (L,)``, in
    any order (pairs are placed by their indices). ``beta`` is QuantEcon's discount factor (our
    ``gamma``); β = 1 is accepted, as DiscreteDP does, for finite-horizon problems
    (``solve(mdp, horizon=T)``; the infinite-horizon solvers refuse it unless every policy terminates).

    DiscreteDP's API in mdpsandbox terms (σ = a deterministic policy as an action per state, π_σ its
    one-hot ``(S, A)`` array ``np.eye(A)[σ]``; tests/test_quantecon_cases.py checks each line):

    * ``DiscreteDP(R, Q, beta[, s_indices, a_indices])`` ↔ ``mdp, feasible = from_quantecon(...)``;
    * ``ddp.solve("policy_iteration" | "value_iteration" | "modified_policy_iteration" |
      "linear_programming")`` ↔ ``solve(mdp, method="pi" | "vi" | "mpi" | "lp")`` (also
      ``"gauss-seidel"`` and ``"auto"``); ``epsilon`` ↔ ``tol`` (VI/MPI: both stop at an iterate with
      ‖v − v*‖∞ < tol/2 — ours reports that certificate as ``Solution.bound``), ``v_init`` ↔ ``v0``,
      ``k`` (MPI partial-evaluation sweeps) ↔ ``m = k + 1`` of
      :func:`~mdpsandbox.solvers.classic.modified_policy_iteration`; PI and LP (ours: an LP answer
      polished by exact policy evaluation) return V* itself;
    * ``res.v`` ↔ ``sol.v``; ``res.sigma`` ↔ ``np.argmax(np.where(feasible, sol.q, -np.inf), axis=1)``
      (``sol.policy`` spreads argmax ties uniformly, including over the copies that stand for
      infeasible actions); ``res.num_iter`` ↔ ``sol.iterations``;
    * ``res.mc`` / ``ddp.controlled_mc(σ)`` ↔ ``mdp.policy_matrix(π_σ)`` (the chain P_σ; its
      recurrent classes: :func:`~mdpsandbox.solvers.classic.recurrent_classes`, its gain:
      :func:`~mdpsandbox.solvers.classic.average_reward`);
    * ``ddp.evaluate_policy(σ)`` ↔ ``evaluate(mdp, π_σ).v`` (one exact linear solve);
    * ``ddp.compute_greedy(v)`` ↔ ``np.argmax(np.where(feasible, R + γ P v, -np.inf), axis=1)`` with
      R + γPv = :func:`~mdpsandbox.solvers.backups.q_backup`; for v = V^σ that is
      ``evaluate(mdp, π_σ).q`` (one policy-improvement step);
    * ``ddp.bellman_operator(v)`` ↔ ``q_backup(mdp.P2, mdp.R, γ, v).max(axis=1)``;
    * ``backward_induction(ddp, T)`` ↔ ``solve(mdp, horizon=T)`` (``sol.v[t]`` = their ``vs[t]`` for
      t < T, their ``vs[T]`` is the terminal value 0 — ``terminal_value`` to change it);
    * ``ddp.to_sa_pair_form()`` / ``to_product_form()``: both forms convert to the same TabularMDP.

    TabularMDP has a fixed action set, so an infeasible (s, a) becomes a copy of state s's first
    feasible action (same transition, same reward). That is exact for hard control (what DiscreteDP
    solves: a duplicate action changes neither V* nor the optimal value of any policy), and for KL
    control when ``ref_policy`` is 0 on infeasible actions (KL to π_ref excludes them exactly); it is
    *not* the same problem under entropy regularisation (duplicates change the entropy), so use KL
    with such a reference there. Returns ``(mdp, feasible)``.
    """
    gamma = check_gamma(beta, "beta")
    R = np.asarray(R, dtype=np.float64)
    if s_indices is None:
        if R.ndim != 2:
            raise ValueError(f"R must be (n, m) in product form (or pass s_indices/a_indices), got shape {R.shape}")
        n, m = R.shape
        Qd = np.asarray(Q.toarray() if sp.issparse(Q) else Q, dtype=np.float64)
        if Qd.shape != (n, m, n):
            raise ValueError(f"Q must have shape (n, m, n) = {(n, m, n)} in product form, got {Qd.shape}")
        feasible = R > -np.inf
        Q2 = Qd.reshape(n * m, n)
    else:
        if a_indices is None:
            raise ValueError("state-action-pair form needs both s_indices and a_indices")
        s_idx = np.asarray(s_indices)
        a_idx = np.asarray(a_indices)
        if R.ndim != 1 or s_idx.shape != R.shape or a_idx.shape != R.shape:
            raise ValueError(f"R, s_indices and a_indices must all be (L,), got {R.shape}, {s_idx.shape}, {a_idx.shape}")
        if not (np.issubdtype(s_idx.dtype, np.integer) and np.issubdtype(a_idx.dtype, np.integer)):
            raise ValueError("s_indices and a_indices must be integer arrays")
        Qs = sp.csr_matrix(Q, dtype=np.float64)
        n = Qs.shape[1]
        if R.size == 0:
            raise ValueError("state-action-pair form needs at least one (s_indices, a_indices) pair")
        if Qs.shape[0] != R.size:
            raise ValueError(f"Q must have shape (L, n) with L = len(R) = {R.size}, got {Qs.shape}")
        if s_idx.min() < 0 or s_idx.max() >= n:
            raise ValueError(f"s_indices must lie in [0, {n}), got range [{s_idx.min()}, {s_idx.max()}]")
        if a_idx.min() < 0:
            raise ValueError("a_indices must be >= 0")
        m = int(a_idx.max()) + 1
        pairs = s_idx * m + a_idx
        if np.unique(pairs).size != pairs.size:
            raise ValueError("(s_indices, a_indices) contain a repeated state-action pair")
        full_R = np.full(n * m, -np.inf)
        full_R[pairs] = R
        feasible = (full_R > -np.inf).reshape(n, m)
        R = full_R.reshape(n, m)
        Q2 = sp.lil_matrix((n * m, n))
        Q2[pairs] = Qs
        Q2 = Q2.tocsr()
    if np.any(np.isnan(R)) or np.any(R == np.inf):
        raise ValueError("R must not contain NaN or +inf (use -inf for infeasible actions)")
    if not feasible.any(axis=1).all():
        s = int(np.flatnonzero(~feasible.any(axis=1))[0])
        raise ValueError(f"state {s} has no feasible action (every R[{s}, :] is -inf)")
    first = np.argmax(feasible, axis=1)
    src = np.where(feasible, np.arange(m)[None, :], first[:, None])        # action whose row (s, a) copies
    rows = (np.arange(n)[:, None] * m + src).ravel()
    P2 = Q2[rows]
    Rf = np.take_along_axis(R, src, axis=1)
    return TabularMDP(P2 if sp.issparse(P2) else P2.reshape(n, m, n), Rf, gamma), feasible


def to_quantecon(mdp: TabularMDP, feasible=None) -> tuple:
    r"""QuantEcon DiscreteDP product-form inputs ``(R (S, A), Q (S, A, S), beta)`` of ``mdp``.
    Terminal states become absorbing with reward 0 (DiscreteDP has no terminal set; their value is 0
    for β < 1). ``feasible`` (S, A) marks actions to export as ``-inf`` rewards."""
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    if mdp.gamma >= 1.0:
        raise ValueError("QuantEcon's DiscreteDP needs beta < 1; mdp has gamma = 1")
    S, A = mdp.n_states, mdp.n_actions
    Q = mdp.dense_P().copy()
    R = mdp.R.copy()
    t = np.flatnonzero(mdp.terminal)
    Q[t] = 0.0
    Q[t, :, t] = 1.0
    R[t] = 0.0
    if feasible is not None:
        f = np.asarray(feasible, dtype=bool)
        if f.shape != (S, A):
            raise ValueError(f"feasible must have shape {(S, A)}, got {f.shape}")
        if not f.any(axis=1).all():
            s = int(np.flatnonzero(~f.any(axis=1))[0])
            raise ValueError(f"feasible: state {s} has no feasible action (DiscreteDP needs one per state)")
        R = np.where(f, R, -np.inf)
    return R, Q, mdp.gamma
