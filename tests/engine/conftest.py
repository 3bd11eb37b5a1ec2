"""Fixtures the engine tests share."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks and samples one at a time run fastest on one thread, far faster than two threads competing for
    a busy CPU. The thread count is put back after the module. Use with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
