"""Shared pytest setup: the ``slow`` marker, 2 CPU threads (CI has 2 cores), fixed seeds."""

from __future__ import annotations

import os
import random

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads
# made torch 5-30x slower. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

try:
    import torch
except ImportError:  # pragma: no cover - torch is a hard dependency; keep config tests usable
    torch = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")
    if torch is not None:
        torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Every test starts from the same RNG state, whatever ran before it."""
    random.seed(0)
    try:
        import numpy as np

        np.random.seed(0)
    except ImportError:  # pragma: no cover
        pass
    if torch is not None:
        torch.manual_seed(0)
