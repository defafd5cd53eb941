"""Shared pytest configuration.

Hypothesis profiles: ``ci`` (default; modest example counts, no deadline because numba compiles
on first call) and ``thorough`` (select with ``HYPOTHESIS_PROFILE=thorough``).
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=20, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    """A fixed-seed numpy Generator (tests never use global randomness)."""
    return np.random.default_rng(12345)
