r"""Torch models that put logits on every node of a token tree (docs/math.md §4–5).

Every model is a :class:`TreeModel`: it knows the tree's shape (V, H, number of prompts) and maps
(prompt, node) pairs in the canonical node order to logits ``(..., V)``:

* ``model(nodes, prompts)`` → ``(B, V)`` logits at those nodes (``prompts`` defaults to 0);
* ``model.all_logits()`` → ``(n_prompts, n_nodes, V)`` for the whole tree in one batched call;
* ``model.trajectory_logits(tokens, prompts)`` → ``(n, T, V)`` along sampled token sequences
  (the transformer does this in one causal pass, like an LM);
* optional value head: ``model.values(nodes, prompts)`` → ``(B,)`` and ``model.all_values()``
  (PCL and DRO learn a value next to the policy).

Models:

* :class:`TabularLogits` — one free logit vector per node (initialised from the reference logits,
  from zero, or from any array): the exact-parameterisation learner whose fixed points tests compare
  with dynamic programming.
* :class:`PrefixMLP` — an MLP over a one-hot encoding of (prompt, prefix, level).
* :class:`PrefixTransformer` — a tiny causal transformer over ``[BOS_prompt, t_0, …, t_{h−1}]``;
  position h gives the logits at the node of that prefix.

Neural models can start *at* a given logit table: with ``base_logits`` (``(n_prompts, n_nodes, V)``)
their output is ``base_logits[p, s] + f_θ(p, s)`` with f's last layer zero-initialised, so training
starts exactly at, e.g., the reference logits (g = ℓ_ref — ShiQ's initialisation). To fine-tune an LM
literally, build the tree from it with :func:`tree_from_lm` and train a ``copy.deepcopy`` of it.
"""
from __future__ import annotations

import copy
import math
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from .._validate import check_int
from ..envs.token import TokenMDP
from ._tree import level_start, node_prefixes

__all__ = [
    "TreeModel", "TabularLogits", "PrefixMLP", "PrefixTransformer", "MODELS", "make_model",
    "reference_lm", "tree_from_lm", "seeded",
]

#: Model names accepted by :func:`make_model` and the trainer.
MODELS = ("tabular", "mlp", "transformer")


class seeded:
    """Context manager: build parameters from ``torch.manual_seed(seed)`` without touching the
    caller's global RNG state (same seed → same initial weights)."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def __enter__(self):
        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        return self._fork.__exit__(*exc)


def _as_index(x, name: str, upper: int, shape_like: Optional[torch.Tensor] = None) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.long)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= upper):
        raise ValueError(f"{name} must lie in [0, {upper}), got values in [{int(t.min())}, {int(t.max())}]")
    return t


class TreeModel(nn.Module):
    """Base class: logits (and optionally values) on the nodes of a token tree of a given shape.

    Subclasses implement :meth:`_logits(nodes, prompts)` → ``(B, V)`` (and :meth:`_values` when
    ``value_head``); the base class validates indices and provides whole-tree and trajectory views.
    """

    def __init__(self, vocab_size: int, horizon: int, n_prompts: int = 1, value_head: bool = False):
        super().__init__()
        self.vocab_size = check_int(vocab_size, "vocab_size")
        self.horizon = check_int(horizon, "horizon")
        self.n_prompts = check_int(n_prompts, "n_prompts")
        self.has_value = bool(value_head)
        self.register_buffer("level_start", torch.as_tensor(level_start(self.vocab_size, self.horizon)),
                             persistent=False)
        self.n_nodes = int(self.level_start[-1])

    # --- to implement
    def _logits(self, nodes: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _values(self, nodes: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # --- public API
    def _idx(self, nodes, prompts):
        nodes = _as_index(nodes, "nodes", self.n_nodes)
        prompts = torch.zeros_like(nodes) if prompts is None else _as_index(prompts, "prompts", self.n_prompts)
        return nodes, torch.broadcast_to(prompts, nodes.shape)

    def forward(self, nodes, prompts=None) -> torch.Tensor:
        """Logits ``(*nodes.shape, V)`` at the given nodes (canonical indices) of the given prompts."""
        nodes, prompts = self._idx(nodes, prompts)
        flat = self._logits(nodes.reshape(-1), prompts.reshape(-1))
        return flat.reshape(*nodes.shape, self.vocab_size)

    def values(self, nodes, prompts=None) -> torch.Tensor:
        """Learned values ``(*nodes.shape,)`` (only with ``value_head=True``)."""
        if not self.has_value:
            raise ValueError(f"{type(self).__name__} was built without a value head (pass value_head=True)")
        nodes, prompts = self._idx(nodes, prompts)
        return self._values(nodes.reshape(-1), prompts.reshape(-1)).reshape(nodes.shape)

    def _all_index(self):
        nodes = torch.arange(self.n_nodes).repeat(self.n_prompts)
        prompts = torch.arange(self.n_prompts).repeat_interleave(self.n_nodes)
        return nodes, prompts

    def all_logits(self) -> torch.Tensor:
        """Logits at every node, ``(n_prompts, n_nodes, V)`` in the canonical order."""
        nodes, prompts = self._all_index()
        return self._logits(nodes, prompts).reshape(self.n_prompts, self.n_nodes, self.vocab_size)

    def all_values(self) -> torch.Tensor:
        """Values at every node, ``(n_prompts, n_nodes)``."""
        if not self.has_value:
            raise ValueError(f"{type(self).__name__} was built without a value head (pass value_head=True)")
        nodes, prompts = self._all_index()
        return self._values(nodes, prompts).reshape(self.n_prompts, self.n_nodes)

    def trajectory_logits(self, nodes, prompts=None) -> torch.Tensor:
        """Logits along trajectories: ``nodes`` ``(n, T)`` (``-1`` padding allowed) → ``(n, T, V)``
        (rows at padding are the root's logits and must be masked by the caller)."""
        nodes = torch.as_tensor(nodes, dtype=torch.long)
        p = None if prompts is None else torch.as_tensor(prompts, dtype=torch.long)[:, None].expand_as(nodes)
        return self.forward(nodes.clamp(min=0), p)

    def check_tree(self, env: TokenMDP) -> None:
        """Raise ``ValueError`` if the model's tree shape differs from ``env``'s."""
        mine = (self.vocab_size, self.horizon, self.n_prompts)
        theirs = (env.vocab_size, env.horizon, env.n_prompts)
        if mine != theirs:
            raise ValueError(f"model was built for a tree with (vocab_size, horizon, n_prompts)={mine}, "
                             f"but env has {theirs}")


def _base_tensor(base, n_prompts, n_nodes, V, dtype) -> Optional[torch.Tensor]:
    if base is None:
        return None
    b = torch.as_tensor(np.asarray(base, dtype=np.float64), dtype=dtype)
    if b.ndim == 2:
        b = b[None]
    if tuple(b.shape) != (n_prompts, n_nodes, V):
        raise ValueError(f"base_logits must have shape ({n_prompts}, {n_nodes}, {V}) or ({n_nodes}, {V}), "
                         f"got {tuple(np.shape(base))}")
    return b


class TabularLogits(TreeModel):
    r"""One free logit vector g(s, ·) per node (and optionally a free value V(s)).

    Parameters
    ----------
    env : TokenMDP whose tree the table covers.
    init : ``"ref"`` (g = ℓ_ref, the reference logits — ShiQ's initialisation), ``"log_ref"``
        (g = log π_ref), ``"zero"`` (g = 0 — Q-learning from zero) or an array
        ``(n_nodes, V)`` / ``(n_prompts, n_nodes, V)``.
    value_head : also learn a free value per node (initialised to ``value_init``).
    dtype : torch dtype (float64 by default: tabular fixed points are compared to round-off).
    """

    def __init__(self, env: TokenMDP, init: Union[str, np.ndarray] = "ref", *, value_head: bool = False,
                 value_init: float = 0.0, dtype: torch.dtype = torch.float64):
        if not isinstance(env, TokenMDP):
            raise ValueError(f"env must be a TokenMDP, got {type(env).__name__}")
        super().__init__(env.vocab_size, env.horizon, env.n_prompts, value_head)
        P, N, V = env.n_prompts, env.n_nodes, env.vocab_size
        if isinstance(init, str):
            if init == "ref":
                g0 = env._ref
            elif init == "log_ref":
                g0 = env.log_ref_policy.reshape(P, N, V)
            elif init == "zero":
                g0 = np.zeros((P, N, V))
            else:
                raise ValueError(f"init must be 'ref', 'log_ref', 'zero' or an array, got {init!r}")
        else:
            g0 = init
        self.logits = nn.Parameter(_base_tensor(g0, P, N, V, dtype).clone())
        if value_head:
            self.value = nn.Parameter(torch.full((P, N), float(value_init), dtype=dtype))

    def _logits(self, nodes, prompts):
        return self.logits[prompts, nodes]

    def _values(self, nodes, prompts):
        return self.value[prompts, nodes]

    def all_logits(self) -> torch.Tensor:
        return self.logits

    def all_values(self) -> torch.Tensor:
        if not self.has_value:
            return super().all_values()
        return self.value


class _NeuralTreeModel(TreeModel):
    def __init__(self, vocab_size, horizon, n_prompts, value_head, base_logits, dtype):
        super().__init__(vocab_size, horizon, n_prompts, value_head)
        base = _base_tensor(base_logits, self.n_prompts, self.n_nodes, self.vocab_size, dtype)
        if base is not None:
            self.register_buffer("base_logits", base)
        else:
            self.base_logits = None
        toks, lev = node_prefixes(self.vocab_size, self.horizon)
        self.register_buffer("node_tokens", torch.as_tensor(toks), persistent=False)
        self.register_buffer("node_level", torch.as_tensor(lev), persistent=False)

    def _add_base(self, out, nodes, prompts):
        if self.base_logits is not None:
            out = out + self.base_logits[prompts, nodes]
        return out


class PrefixMLP(_NeuralTreeModel):
    r"""MLP over a one-hot encoding of (prompt, prefix tokens by position, level).

    Output ``base_logits[p, s] + f_θ(p, s)`` (``f``'s last layer starts at 0 when ``base_logits`` is
    given, so the model starts exactly at the base table). Shapes: nodes ``(B,)`` → ``(B, V)``.
    """

    def __init__(self, vocab_size: int, horizon: int, n_prompts: int = 1, *, hidden: int = 64, layers: int = 2,
                 base_logits=None, value_head: bool = False, seed: int = 0, dtype: torch.dtype = torch.float64):
        super().__init__(vocab_size, horizon, n_prompts, value_head, base_logits, dtype)
        V, H, P = self.vocab_size, self.horizon, self.n_prompts
        self.n_features = self.node_tokens.shape[1] * (V + 1) + H + P
        with seeded(seed):
            mods, d = [], self.n_features
            for _ in range(check_int(layers, "layers")):
                mods += [nn.Linear(d, hidden, dtype=dtype), nn.SiLU()]
                d = hidden
            self.body = nn.Sequential(*mods)
            self.head = nn.Linear(d, V, dtype=dtype)
            self.value_out = nn.Linear(d, 1, dtype=dtype) if value_head else None
        if base_logits is not None:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self._dtype = dtype

    def features(self, nodes, prompts) -> torch.Tensor:
        """One-hot features ``(B, n_features)``: per prefix position a (V+1)-way slot (V = empty),
        the level, the prompt."""
        V = self.vocab_size
        toks = self.node_tokens[nodes].clone()
        toks[toks < 0] = V
        oh = nn.functional.one_hot(toks, V + 1).reshape(len(nodes), -1)
        lev = nn.functional.one_hot(self.node_level[nodes], self.horizon)
        pr = nn.functional.one_hot(prompts, self.n_prompts)
        return torch.cat([oh, lev, pr], dim=1).to(self._dtype)

    def _logits(self, nodes, prompts):
        h = self.body(self.features(nodes, prompts))
        return self._add_base(self.head(h), nodes, prompts)

    def _values(self, nodes, prompts):
        return self.value_out(self.body(self.features(nodes, prompts))).squeeze(-1)


class PrefixTransformer(_NeuralTreeModel):
    r"""A tiny causal transformer LM over ``[BOS_p, t_0, …, t_{H−2}]`` (BOS per prompt p).

    Position h (attending to BOS and the first h tokens only) gives the logits at the node of the
    length-h prefix. :meth:`all_logits` runs the V^{H−1} longest prefixes through the network once
    and reads every node off the position of its length — one batched call for the whole tree;
    :meth:`trajectory_logits` is one causal pass over sampled sequences.

    Output ``base_logits[p, s] + f_θ(p, s)`` when ``base_logits`` is given (head zero-initialised);
    with ``base_logits=None`` the model is a plain LM (``logit_scale`` multiplies the head's initial
    weights — useful for a random *reference* LM, see :func:`reference_lm`).
    """

    def __init__(self, vocab_size: int, horizon: int, n_prompts: int = 1, *, d_model: int = 32, n_heads: int = 2,
                 n_layers: int = 2, dim_feedforward: Optional[int] = None, base_logits=None,
                 value_head: bool = False, seed: int = 0, logit_scale: float = 1.0,
                 dtype: torch.dtype = torch.float64):
        super().__init__(vocab_size, horizon, n_prompts, value_head, base_logits, dtype)
        V, H, P = self.vocab_size, self.horizon, self.n_prompts
        with seeded(seed):
            self.embed = nn.Embedding(V + P, d_model, dtype=dtype)
            self.pos = nn.Embedding(H, d_model, dtype=dtype)
            layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward or 4 * d_model, dropout=0.0,
                                               batch_first=True, norm_first=True, dtype=dtype)
            self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d_model, dtype=dtype)
            self.head = nn.Linear(d_model, V, dtype=dtype)
            self.value_out = nn.Linear(d_model, 1, dtype=dtype) if value_head else None
        if base_logits is not None:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        elif logit_scale != 1.0:
            with torch.no_grad():
                self.head.weight.mul_(logit_scale)
                self.head.bias.mul_(logit_scale)
        self.register_buffer("causal_mask", torch.triu(torch.full((H, H), float("-inf"), dtype=dtype), 1),
                             persistent=False)

    def hidden(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` ``(n, T)`` token ids (BOS_p = V + p first) → hidden states ``(n, T, d_model)``."""
        T = inputs.shape[1]
        x = self.embed(inputs) + self.pos.weight[:T]
        x = self.blocks(x, mask=self.causal_mask[:T, :T], is_causal=True)
        return self.norm(x)

    def _inputs(self, prefix_tokens: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        bos = (self.vocab_size + prompts)[:, None]
        return torch.cat([bos, prefix_tokens.clamp(min=0)], dim=1)

    def _node_hidden(self, nodes, prompts):
        toks = self.node_tokens[nodes][:, : self.horizon - 1]
        h = self.hidden(self._inputs(toks, prompts))  # (B, H, d)
        return h[torch.arange(len(nodes)), self.node_level[nodes]]

    def _logits(self, nodes, prompts):
        return self._add_base(self.head(self._node_hidden(nodes, prompts)), nodes, prompts)

    def _values(self, nodes, prompts):
        return self.value_out(self._node_hidden(nodes, prompts)).squeeze(-1)

    def _all_hidden(self):
        """Hidden state at every node ``(P, N, d)`` from the V^{H−1} longest prefixes of each prompt."""
        V, H, P, N = self.vocab_size, self.horizon, self.n_prompts, self.n_nodes
        ls = self.level_start
        deepest = self.node_tokens[ls[H - 1]:ls[H], : H - 1]  # (V^{H-1}, H-1)
        M = deepest.shape[0]
        prompts = torch.arange(P).repeat_interleave(M)
        h = self.hidden(self._inputs(deepest.repeat(P, 1), prompts)).reshape(P, M, H, -1)
        nodes = torch.arange(N)
        lev = self.node_level
        off = nodes - ls[lev]
        seq = off * (V ** (H - 1 - lev))  # a longest prefix that extends the node's prefix
        return h[:, seq, lev]

    def all_logits(self) -> torch.Tensor:
        out = self.head(self._all_hidden())
        if self.base_logits is not None:
            out = out + self.base_logits
        return out

    def all_values(self) -> torch.Tensor:
        if not self.has_value:
            return super().all_values()
        return self.value_out(self._all_hidden()).squeeze(-1)

    def trajectory_logits(self, nodes, prompts=None) -> torch.Tensor:
        """One causal pass over trajectories: ``nodes`` ``(n, T)`` of consecutive nodes of episodes
        that start at the root (``-1`` padding) → ``(n, T, V)``. Falls back to per-node evaluation when
        a row does not start at the root."""
        nodes = torch.as_tensor(nodes, dtype=torch.long)
        n, T = nodes.shape
        pr = torch.zeros(n, dtype=torch.long) if prompts is None else torch.as_tensor(prompts, dtype=torch.long)
        if T > self.horizon or bool((nodes[:, 0] != 0).any()):
            return super().trajectory_logits(nodes, prompts)
        # the token taken at step t is the last prefix token of node t+1; recover from the deepest node
        last = nodes.clamp(min=0).gather(1, ((nodes >= 0).sum(1, keepdim=True) - 1).clamp(min=0))[:, 0]
        toks = self.node_tokens[last][:, : max(T - 1, 0)]
        h = self.hidden(self._inputs(toks, pr))[:, :T]
        out = self.head(h)
        if self.base_logits is not None:
            out = out + self.base_logits[pr[:, None], nodes.clamp(min=0)]
        return out


def make_model(name: Union[str, nn.Module], env: TokenMDP, *, init: Union[str, np.ndarray] = "ref",
               value_head: bool = False, seed: int = 0, dtype: torch.dtype = torch.float64, **kwargs) -> TreeModel:
    """Build a model by name for ``env`` starting at the logit table ``init`` (``"ref"``, ``"log_ref"``,
    ``"zero"`` or an array). ``name`` in :data:`MODELS`; an ``nn.Module`` is checked and returned."""
    if isinstance(name, nn.Module):
        if not isinstance(name, TreeModel):
            raise ValueError("a custom model must subclass mdpsandbox.learners.TreeModel (logits per node)")
        name.check_tree(env)
        if value_head and not name.has_value:
            raise ValueError("this algorithm learns a value: the model needs value_head=True")
        return name
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)} or a TreeModel instance, got {name!r}")
    if name == "tabular":
        return TabularLogits(env, init, value_head=value_head, dtype=dtype)
    P, N, V = env.n_prompts, env.n_nodes, env.vocab_size
    if isinstance(init, str):
        base = {"ref": lambda: env._ref, "zero": lambda: None,
                "log_ref": lambda: env.log_ref_policy.reshape(P, N, V)}.get(init)
        if base is None:
            raise ValueError(f"init must be 'ref', 'log_ref', 'zero' or an array, got {init!r}")
        base = base()
    else:
        base = init
    cls = PrefixMLP if name == "mlp" else PrefixTransformer
    return cls(V, env.horizon, P, base_logits=base, value_head=value_head, seed=seed, dtype=dtype, **kwargs)


# ---------------------------------------------------------------------- reference LM
def reference_lm(vocab_size: int, horizon: int, *, n_prompts: int = 1, seed: int = 0, logit_scale: float = 3.0,
                 d_model: int = 32, n_layers: int = 2, n_heads: int = 2,
                 dtype: torch.dtype = torch.float64) -> PrefixTransformer:
    """A small random causal transformer LM to play the pretrained model π_ref (plain LM, no base table;
    ``logit_scale`` sharpens its initial next-token distributions)."""
    return PrefixTransformer(vocab_size, horizon, n_prompts, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                             seed=seed, logit_scale=logit_scale, dtype=dtype)


@torch.no_grad()
def tree_from_lm(model: TreeModel, rewards: Union[str, np.ndarray] = "terminal", *, seed: int = 0,
                 gamma: float = 1.0, eos: Optional[int] = None, p_success: float = 0.3) -> TokenMDP:
    r"""The token MDP whose reference policy *is* ``model``: ``ref_logits[p, s] = model(s, p)`` at every node.

    rewards : an array ``(n_nodes, V)`` / ``(n_prompts, n_nodes, V)`` or a kind as in
        :meth:`TokenMDP.random` (``"terminal"``, ``"dense"``, ``"bernoulli"``; drawn with ``seed``).

    Fine-tuning the LM is then literal: train ``copy.deepcopy(model)`` on the returned env (its logits
    start exactly at ℓ_ref).
    """
    if not isinstance(model, TreeModel):
        raise ValueError(f"model must be a TreeModel, got {type(model).__name__}")
    logits = model.all_logits().detach().to(torch.float64).cpu().numpy()
    V, H, P = model.vocab_size, model.horizon, model.n_prompts
    if isinstance(rewards, str):
        r = TokenMDP.random(V, H, reward=rewards, seed=seed, gamma=gamma, eos=eos, n_prompts=P,
                            p_success=p_success).rewards
    else:
        r = rewards
    return TokenMDP(V, H, logits[0] if P == 1 else logits, r, gamma=gamma, eos=eos, n_prompts=P)
