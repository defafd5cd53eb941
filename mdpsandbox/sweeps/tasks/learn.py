r"""Built-in task ``train``: any registered learner (:func:`mdpsandbox.learners.train`) on a random
token tree, scored against the exact KL-regularised solution (docs/math.md §3–§5, §9).

torch is imported only when a cell runs (and when the sweep is validated, to list the algorithms).
Parameters: ``algorithm`` (a registered name), the tree ``vocab_size`` [3], ``horizon`` [3],
``reward`` ["terminal"], ``ref`` ["random"], ``logit_scale`` [1.0], ``offset_scale`` [0.0],
``gamma`` [1.0], ``env_seed`` [0] (the tree's seed), and the learner's ``beta`` [0.5], ``model``
["tabular"], ``seed`` [0] (the learner's seed; make it an axis for seed bands) and ``steps``, ``lr``,
``optimizer``, ``batch_size``, ``eval_every`` [None: the trainer's own defaults]. Metrics: the scalar entries of ``TrainResult.final`` (``loss``,
``logit_error``, ``tv_max``, … — whatever the learner's metrics are), plus ``final_step``.
"""
from __future__ import annotations

import numbers

from .registry import Param, task

__all__ = ["train_task"]


def train_task(*, algorithm: str = "shiq", vocab_size: int = 3, horizon: int = 3, reward: str = "terminal",
               ref: str = "random", logit_scale: float = 1.0, offset_scale: float = 0.0, gamma: float = 1.0,
               env_seed: int = 0, beta: float = 0.5, model: str = "tabular", steps=None, lr=None,
               optimizer=None, batch_size=None, eval_every=None, seed: int = 0) -> dict:
    """Train ``algorithm`` and return the scalar final metrics against the exact solution (learner
    options left at None take :func:`mdpsandbox.learners.train`'s own defaults)."""
    import torch

    import mdpsandbox as ms
    from ...learners import train

    torch.set_num_threads(1)  # one core per cell: cells run in parallel, not the GEMMs inside one
    env = ms.TokenMDP.random(vocab_size, horizon, reward=reward, ref=ref, seed=env_seed, gamma=gamma,
                             logit_scale=logit_scale, offset_scale=offset_scale)
    opts = {k: v for k, v in dict(steps=steps, lr=lr, optimizer=optimizer, batch_size=batch_size,
                                   eval_every=eval_every).items() if v is not None}
    res = train(algorithm, env, beta=beta, model=model, seed=seed, progress=False, **opts)
    out = {k: v for k, v in res.final.items()
           if isinstance(v, (numbers.Real, bool, str)) and k != "step"}
    out["final_step"] = int(res.final.get("step", -1))
    return out


def _check(names, values):
    algos = values.get("algorithm")
    if algos:
        from ...learners import algorithm_names, ALGORITHMS

        bad = [a for a in algos if a not in ALGORITHMS]
        if bad:
            raise ValueError(f"task 'train': unknown algorithm(s) {bad}; registered: {', '.join(algorithm_names())}")
    for n in ("beta", "lr"):
        for v in values.get(n, []):
            if v is not None and not v > 0:
                raise ValueError(f"task 'train': parameter {n!r} must be > 0, got {v!r}")


_F, _I, _S = (float,), (int,), (str,)
SCHEMA = {
    "algorithm": Param(_S, "registered learner (mdpsandbox.learners.algorithm_names())"),
    "vocab_size": Param(_I, "tree vocabulary size V"), "horizon": Param(_I, "tree horizon H"),
    "reward": Param(_S, "tree reward kind", choices=("terminal", "dense", "bernoulli")),
    "ref": Param(_S, "reference LM", choices=("random", "uniform", "ngram")),
    "logit_scale": Param(_F, "std of the reference logits"), "offset_scale": Param(_F, "per-node logit offset std"),
    "gamma": Param(_F, "discount"), "env_seed": Param(_I, "seed of the tree"),
    "beta": Param(_F, "KL coefficient β > 0"), "model": Param(_S, "model", choices=("tabular", "mlp", "transformer")),
    "steps": Param(_I, "updates (None: the learner's default)", optional=True),
    "lr": Param(_F, "learning rate", optional=True),
    "optimizer": Param(_S, "optimizer (None: the learner's default)", optional=True),
    "batch_size": Param(_I, "rows per update", optional=True), "eval_every": Param(_I, "evaluation period", optional=True),
    "seed": Param(_I, "learner seed"),
}
task("train", params=SCHEMA, check=_check, metrics=("logit_error", "tv_max", "loss", "final_step"))(train_task)
