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
