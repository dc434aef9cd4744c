"""PyTorch, the optional test oracle: the one place the tests get it from.

A test that needs torch takes the `torch` fixture (tests/conftest.py), which skips it, saying
why, when torch is not installed. A file that needs torch throughout calls `require_torch()` at
module level instead. CI installs torch, so nothing is skipped there.
"""

from __future__ import annotations

from types import ModuleType

import pytest

REASON = "PyTorch is the optional test oracle: pip install torch==2.13.0 to run this test"


def require_torch() -> ModuleType:
    """torch, or a skip of the calling test (or, at module level, of the whole file)."""
    return pytest.importorskip("torch", reason=REASON)


def torch_if_installed() -> ModuleType | None:
    """torch or None, for a test whose own checks run without it and also compare with it."""
    try:
        import torch
    except ImportError:
        return None
    return torch
