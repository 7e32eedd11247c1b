import os

import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", max_examples=50, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=CUDA)]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory):
    """A 16-image synthetic cache (rendered once per test session)."""
    from crnn_fast import data

    return str(data.generate(16, 0, tmp_path_factory.mktemp("data") / "set16", workers=1, progress=False))
