"""What the install reports about itself, and what a broken install says."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crnn_fast import _extension, info


def run_info(*args):
    return subprocess.run([sys.executable, "-m", "crnn_fast.info", *args], capture_output=True, text=True)


def test_info_reports_compiled_backends():
    proc = run_info("--json")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["torch"] == torch.__version__
    assert facts["compiled"]["cpu"] is True
    assert set(facts["kernels"]) == {"ctc_beam_search", "ctc_beam_search_chunk", "ctc_beam_state_compact",
                                     "ctc_beam_state_read", "ctc_greedy_decode", "edit_distance", "sequence_metrics"}
    assert all(keys[0] == "CPU" for keys in facts["kernels"].values())
    # a CUDA build of torch with a toolkit must have compiled the CUDA kernels too
    assert facts["compiled"]["cuda"] == ("CUDA" in facts["kernels"]["ctc_greedy_decode"])
    if facts["compiled"]["cuda"]:
        assert facts["compiled"]["cuda_archs"]


def test_info_human_output_and_require():
    proc = run_info()
    assert proc.returncode == 0 and "CPU kernels      yes" in proc.stdout
    assert run_info("--require", "cpu").returncode == 0
    cuda = run_info("--require", "cuda")
    assert cuda.returncode == (0 if info.collect()["compiled"]["cuda"] else 1)


def test_too_old_torch_is_explained(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.9.1+cpu")
    with pytest.raises(ImportError, match=r"needs torch >= 2\.10.*Fix: pip install 'torch>=2\.10'"):
        _extension._load()


@pytest.mark.parametrize(
    "failure, match",
    [
        (ImportError("_C.abi3.so: undefined symbol: torch_library_impl"), r"ABI mismatch.*Fix: rebuild.*undefined symbol"),
        (ModuleNotFoundError("No module named 'crnn_fast._C'"), r"missing from the source tree.*pip install -e \."),
    ],
)
def test_unloadable_kernels_are_explained(monkeypatch, failure, match):
    real_import = importlib.import_module

    def fake_import(name, *args):
        if name == "crnn_fast._C":
            raise failure
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(ImportError, match=match):
        _extension._load()


def test_cuda_sanitizer_script_runs():
    """tests/sanitize_cuda.py (run under compute-sanitizer on a GPU) stays runnable: its
    dry run compares the CPU kernels with themselves over the same edge cases."""
    script = str(Path(__file__).with_name("sanitize_cuda.py"))
    proc = subprocess.run([sys.executable, script, "--device", "cpu"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "every kernel ran on cpu and matched the CPU" in proc.stdout
