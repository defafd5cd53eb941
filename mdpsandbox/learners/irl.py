r"""A torch MCE IRL learner: a linear or small-network reward r_ψ(s, a) = f_ψ(φ(s, a)) trained by
maximum causal likelihood from demonstrations (docs/math.md §10; Ziebart et al. 2010; Wulfmeier,
Ondruska & Posner 2015 for the network reward), checked against the exact :func:`mdpsandbox.irl.mce_irl`.

Every update solves the current reward's soft control problem exactly (warm-started soft policy
iteration, or backward induction with a horizon) and uses the exact model occupancy ρ_ψ. The
objective is the causal log-likelihood

.. math::
    \ell(\psi) = \frac{\sum_{s,a}\hat\rho_E(s,a)\,r_\psi(s,a) - \mu_0^\top V_\psi}{\tau},\qquad
    \nabla_\psi\ell = \frac1\tau\sum_{s,a}(\hat\rho_E(s,a) - \rho_\psi(s,a))\,\nabla_\psi r_\psi(s,a),

built as a tensor whose *value* is −ℓ and whose gradient is −∇ℓ (the μ0ᵀV_ψ term enters as its value
plus ρ_ψ·(r − r.detach()), the envelope theorem), so L-BFGS line searches see the true objective. The
model outputs the natural parameter r/τ (as :func:`~mdpsandbox.irl.mce_irl` solves in η = θ/τ):
:math:`\ell = \hat\rho_E\cdot(r/\tau) - \mu_0^\top V^1_{r/\tau}` does not depend on τ otherwise, so
training is the same at every temperature (1e-8 … 1e8) and ``reward``/``theta`` are returned times τ.

Why this is not registered in the shared trainer (:func:`mdpsandbox.learners.train`): that trainer
trains logit models on a :class:`~mdpsandbox.TokenMDP` against one fixed exact solution, with
objectives ``(model, batch, ctx)`` over token datasets. MCE IRL learns a *reward* on a
:class:`~mdpsandbox.TabularMDP`, and its gradient needs a fresh exact soft solve of the current
reward at every step (the model occupancy), which that interface has no place for. So
:func:`train_mce_irl` lives alongside it, with the same conventions (seeded, float64, history of
errors against the exact answer, tqdm progress, NaN refused).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from .._validate import check_distribution, check_int, check_positive, check_shape
from ..envs.tabular import TabularMDP
from ..irl.demos import Demonstrations, empirical_occupancy
from ..irl.mce import IRLResult, _soft_backward, _soft_pi, state_action_features
from ..solvers.occupancy import _check_features, _occupancy_solve, finite_horizon_occupancy
from .trainer import NonFiniteLossError

__all__ = ["IRLTrainResult", "train_mce_irl", "REWARD_MODELS", "LinearReward", "MLPReward"]

REWARD_MODELS = ("linear", "mlp")
OPTIMIZERS = ("adam", "sgd", "lbfgs")


class LinearReward(nn.Module):
    """r(s, a)/τ = ηᵀφ(s, a) (η initialised at 0: the uniform soft policy; θ = τη)."""

    def __init__(self, d: int):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(d, dtype=torch.float64))

    def forward(self, phi: torch.Tensor) -> torch.Tensor:  # (n, d) -> (n,)
        return phi @ self.theta


class MLPReward(nn.Module):
    """r(s, a)/τ = w₂ᵀ tanh(W₁φ(s, a) + b₁) + b₂ (a small network reward)."""

    def __init__(self, d: int, hidden: int = 32, generator: Optional[torch.Generator] = None):
        super().__init__()
        self.l1 = nn.Linear(d, hidden, dtype=torch.float64)
        self.l2 = nn.Linear(hidden, 1, dtype=torch.float64)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) / np.sqrt(max(1, p.shape[-1])))
            self.l2.weight.mul_(0.1)

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        return self.l2(torch.tanh(self.l1(phi))).squeeze(-1)


@dataclass
class IRLTrainResult:
    """Output of :func:`train_mce_irl`.

    model : the trained reward module.  reward ``(S, A)`` numpy; policy, q, v: the exact soft-optimal
    solution of that reward at temperature τ (stationary or ``(H, S, A)``); theta ``(d,)`` for the
    linear model (else None); history: one dict per evaluation (step, log_likelihood, fe_error =
    ‖ρ̂_E − ρ‖ weighted by φ (∞-norm), and, given ``exact``, theta_error and policy_tv against it);
    n_solves: exact soft solves used.
    """

    model: nn.Module
    reward: np.ndarray
    policy: np.ndarray
    q: np.ndarray
    v: np.ndarray
    theta: Optional[np.ndarray]
    history: list = field(default_factory=list)
    n_solves: int = 0

    @property
    def final(self) -> dict:
        return self.history[-1]

    def curve(self, key: str = "fe_error") -> tuple[np.ndarray, np.ndarray]:
        return (np.array([h["step"] for h in self.history]), np.array([h[key] for h in self.history], dtype=float))


def train_mce_irl(mdp: TabularMDP, *, demonstrations: Optional[Demonstrations] = None, expert_policy=None,
                  features=None, reward: Union[str, nn.Module] = "linear", temperature: float = 1.0,
                  horizon: Optional[int] = None, steps: int = 200, lr: Optional[float] = None,
                  optimizer: Optional[str] = None, hidden: int = 32, seed: int = 0, eval_every: Optional[int] = None,
                  exact: Optional[IRLResult] = None, progress: bool = True) -> IRLTrainResult:
    r"""Train a reward network by MCE IRL (see the module docstring for the objective).

    mdp : TabularMDP (its γ; γ = 1 needs termination or ``horizon``).
    demonstrations or expert_policy : the expert (exactly one); demonstrations give the empirical
        discounted occupancy ρ̂_E, an expert policy (``(S, A)``, or ``(H, S, A)`` with a horizon) the exact one.
    features : ``(S, A, d)`` inputs of the reward model (default one-hot (s, a)).
    reward : ``"linear"`` (θᵀφ), ``"mlp"`` (one tanh hidden layer of ``hidden`` units) or an
        ``nn.Module`` mapping ``(S·A, d)`` float64 → ``(S·A,)``.
    optimizer : ``"lbfgs"`` (full batch, strong-Wolfe line search; default lr 1; the default for the
        linear reward, whose objective is concave), ``"adam"`` (default lr 0.05; the default for a
        network reward, where L-BFGS was seen to stall on flat regions) or ``"sgd"`` (default lr 0.1).
        steps : updates.
    exact : an :func:`~mdpsandbox.irl.mce_irl` result on the same data to report θ error and policy TV.
    """
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    tau = check_positive(temperature, "temperature")
    steps = check_int(steps, "steps")
    seed = check_int(seed, "seed", minimum=0)
    hidden = check_int(hidden, "hidden")
    if optimizer is None:
        optimizer = "lbfgs" if (isinstance(reward, str) and reward == "linear") else "adam"
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if lr is not None:
        lr = check_positive(lr, "lr")
    if isinstance(reward, str) and reward not in REWARD_MODELS:
        raise ValueError(f"reward must be one of {', '.join(REWARD_MODELS)} or an nn.Module, got {reward!r}")
    H = None if horizon is None else check_int(horizon, "horizon")
    if H is None:
        mdp.check_solvable()
    S, A = mdp.n_states, mdp.n_actions
    phi = state_action_features(S, A) if features is None else _check_features(features, S, A)
    d = phi.shape[2]
    if (demonstrations is None) == (expert_policy is None):
        raise ValueError("give exactly one of demonstrations or expert_policy")
    eval_every = max(1, steps // 20) if eval_every is None else check_int(eval_every, "eval_every")
    if demonstrations is not None:
        if not isinstance(demonstrations, Demonstrations):
            raise ValueError(f"demonstrations must be a Demonstrations, got {type(demonstrations).__name__}")
        rho_E = empirical_occupancy(demonstrations, S, A, mdp.gamma)
    else:
        pe = check_distribution(expert_policy, "expert_policy")
        check_shape(pe, (S, A) if (H is None or pe.ndim == 2) else (H, S, A), "expert_policy")
        rho_E = _occupancy(mdp, pe if (H is None or pe.ndim == 3) else np.broadcast_to(pe, (H, S, A)), H)

    gen = torch.Generator().manual_seed(seed)
    if isinstance(reward, nn.Module):
        net = reward
    elif reward == "linear":
        net = LinearReward(d)
    else:
        net = MLPReward(d, hidden, gen)
    X = torch.as_tensor(phi.reshape(S * A, d), dtype=torch.float64)
    rhoE_t = torch.as_tensor(rho_E.reshape(-1), dtype=torch.float64)
    if optimizer == "lbfgs":
        # max_eval bounds the strong-Wolfe line search of each update (torch's default, 1.25·max_iter,
        # would leave it no evaluation at max_iter=1)
        opt = torch.optim.LBFGS(net.parameters(), lr=lr or 1.0, max_iter=1, max_eval=25, history_size=20,
                                tolerance_grad=1e-14,
                                tolerance_change=1e-15,
                                line_search_fn="strong_wolfe")
    elif optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr or 0.05)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr or 0.1)
    state = {"warm": None, "n_solves": 0}
    fe_E = rho_E.reshape(-1) @ phi.reshape(S * A, d)

    def exact_solve(eta_r):
        """Soft solve at temperature 1 of the reward r/τ (= τ-temperature solve of r, values / τ)."""
        state["n_solves"] += 1
        if H is None:
            q, v, pol, _ = _soft_pi(mdp, eta_r, state["warm"])
            state["warm"] = pol
        else:
            q, v, pol = _soft_backward(mdp, eta_r, H)
        return q, v, pol

    def objective():
        r = net(X)  # the natural parameter r/τ (see the module docstring)
        if r.shape != (S * A,):
            raise ValueError(f"the reward model must map (S*A, d) to (S*A,) = ({S * A},), got {tuple(r.shape)}")
        eta_r = r.detach().numpy().reshape(S, A)
        if not np.all(np.isfinite(eta_r)):
            raise NonFiniteLossError("the reward model produced NaN/inf rewards")
        r_np = tau * eta_r
        q, v, pol = exact_solve(eta_r)
        rho = _occupancy(mdp, pol, H)
        v0 = float(mdp.initial @ (v if H is None else v[0]))  # μ0ᵀV at temperature 1 of r/τ
        rho_t = torch.as_tensor(rho.reshape(-1), dtype=torch.float64)
        # value −ℓ = −(ρ̂_E·(r/τ) − μ0ᵀV¹_{r/τ}); gradient −(ρ̂_E − ρ)·∇(r/τ)
        loss = -(rhoE_t @ r) + v0 + rho_t @ (r - r.detach())
        return loss, (r_np, q, v, pol, rho)

    history = []
    from tqdm.auto import tqdm

    show = progress and sys.stderr.isatty()

    def record(step, loss, aux):
        r_np, q, v, pol, rho = aux
        fe_err = float(np.max(np.abs(rho.reshape(-1) @ phi.reshape(S * A, d) - fe_E)))
        h = {"step": step, "log_likelihood": -float(loss), "fe_error": fe_err}
        if exact is not None:
            if isinstance(net, LinearReward) and exact.theta.shape == (d,):
                h["theta_error"] = float(np.max(np.abs(tau * net.theta.detach().numpy() - exact.theta)))
            h["policy_tv"] = float(np.max(0.5 * np.abs(pol - exact.policy).sum(axis=-1)))
        history.append(h)

    loss, aux = objective()
    record(0, loss.item(), aux)
    bar = tqdm(range(1, steps + 1), desc="train mce_irl", disable=not show, leave=False)
    for step in bar:
        last = {}

        def closure():
            opt.zero_grad()
            l_, a_ = objective()
            if not torch.isfinite(l_):
                raise NonFiniteLossError(f"MCE IRL objective is {l_.item()} at step {step}")
            l_.backward()
            last["loss"], last["aux"] = l_.item(), a_
            return l_

        opt.step(closure)
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                loss, aux = objective()
            record(step, loss.item(), aux)
    with torch.no_grad():
        _, (r_np, q, v, pol, rho) = objective()
    theta = tau * net.theta.detach().numpy() if isinstance(net, LinearReward) else None
    return IRLTrainResult(model=net, reward=r_np, policy=pol, q=tau * q, v=tau * v, theta=theta, history=history,
                          n_solves=state["n_solves"])


def _occupancy(mdp: TabularMDP, pol: np.ndarray, H: Optional[int]) -> np.ndarray:
    """Discounted ρ(s, a) of a stationary (S, A) or time-indexed (H, S, A) policy."""
    if H is None:
        rho = _occupancy_solve(mdp, mdp.policy_matrix(pol), mdp.initial)
        rho[mdp.terminal] = 0.0
        return rho[:, None] * pol
    rho_t = finite_horizon_occupancy(mdp, pol, H)
    return np.einsum("t,ts,tsa->sa", mdp.gamma ** np.arange(H), rho_t, pol)
