"""Learned logits against the exact solution: :func:`compare` (numpy only, so it lives in
:mod:`mdpsandbox.testing.compare` and works without torch; re-exported here for the learners)."""
from ..testing.compare import CONVENTIONS, compare, policy_from_logits

__all__ = ["compare", "CONVENTIONS", "policy_from_logits"]
