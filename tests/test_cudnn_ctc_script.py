"""benchmarks/cudnn_ctc.py: its cuDNN layout states the same problem as training's, and
it refuses to measure without a GPU instead of reporting a CPU-only comparison."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import cudnn_ctc  # noqa: E402


def test_both_layouts_give_the_same_loss_and_gradient_on_the_cpu():
    """On the CPU both layouts run torch's CPU kernel: equal results mean the concatenated
    int32 targets hold the same labels as the padded ones (padding dropped, order kept)."""
    logits, padded, lengths = cudnn_ctc.inputs(16, 12, 7, 4, seed=3)
    assert (padded[torch.arange(4) >= lengths[:, None]] == -1).all() and lengths.min() >= 1
    results = [cudnn_ctc.loss_and_grad(logits, padded, lengths, "cpu", layout, torch.float64)
               for layout in cudnn_ctc.LAYOUTS]
    (loss_a, grad_a, backend_a), (loss_b, grad_b, backend_b) = results
    assert backend_a == backend_b == "native CPU"
    torch.testing.assert_close(loss_a, loss_b)
    torch.testing.assert_close(grad_a, grad_b)
    assert grad_a.abs().max() > 0.01  # a real gradient, not zeros


def test_cudnn_layout_drops_padding_and_keeps_lengths():
    padded = torch.tensor([[3, 4, -1], [5, -1, -1], [1, 2, 6]], dtype=torch.int32)
    lengths = torch.tensor([2, 1, 3], dtype=torch.int32)
    log_probs = torch.zeros(3, 9, 7)
    tbc, flat, frames, target_lengths = cudnn_ctc.cudnn_args(log_probs, padded, lengths)
    assert tbc.shape == (9, 3, 7)
    assert flat.tolist() == [3, 4, 5, 1, 2, 6] and flat.dtype == torch.int32
    assert frames.tolist() == [9, 9, 9] and target_lengths.tolist() == [2, 1, 3]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_without_a_gpu_it_says_so(capsys):
    assert cudnn_ctc.main([]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        cudnn_ctc.main(["--max-label", "40", "--frames", "37"])
    with pytest.raises(SystemExit):
        cudnn_ctc.main(["--batch", "0"])
