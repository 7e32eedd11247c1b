"""Bad arguments get an exception that names the argument — never a crash or garbage."""

import pytest
import torch

import crnn_fast

LP = torch.randn(3, 6, 5).log_softmax(-1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(log_probs=LP.numpy()), TypeError, "log_probs must be a torch.Tensor"),
        (dict(log_probs=LP[0]), ValueError, r"log_probs must be 3-D"),
        (dict(log_probs=LP.unsqueeze(0)), ValueError, r"log_probs must be 3-D"),
        (dict(log_probs=LP.to(torch.int32)), TypeError, "log_probs must be float"),
        (dict(log_probs=LP.to(torch.complex64)), TypeError, "log_probs must be float"),
        (dict(log_probs=LP.to("meta")), ValueError, "log_probs must be on a CPU or CUDA device"),
        (dict(log_probs=LP[:, :, :0]), ValueError, "log_probs must have at least one class"),
        (dict(blank=5), ValueError, r"blank must be in \[0, C\) = \[0, 5\), got 5"),
        (dict(blank=-1), ValueError, r"blank must be in \[0, C\)"),
        (dict(blank=1.0), TypeError, "blank must be an int"),
        (dict(blank=True), TypeError, "blank must be an int"),
        (dict(input_lengths=torch.tensor([6, -1, 2])), ValueError, r"input_lengths\[1\] = -1 is outside \[0, T=6\]"),
        (dict(input_lengths=torch.tensor([6, 7, 2])), ValueError, r"input_lengths\[1\] = 7 is outside \[0, T=6\]"),
        (dict(input_lengths=torch.tensor([6, 6])), ValueError, r"input_lengths must have shape \(B,\) = \(3,\)"),
        (dict(input_lengths=torch.tensor([[6, 6, 6]])), ValueError, r"input_lengths must have shape"),
        (dict(input_lengths=torch.tensor([6.0, 6.0, 6.0])), TypeError, "input_lengths must hold integers"),
        (dict(input_lengths=torch.tensor([True, True, True])), TypeError, "input_lengths must hold integers"),
        (dict(input_lengths="abc"), TypeError, "input_lengths must be a tensor or a sequence of ints"),
        (dict(input_lengths=[2**40, 1, 1]), ValueError, r"input_lengths\[0\] = 1099511627776 is outside"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_greedy_decode_rejects(kwargs, error, match):
    args = dict(log_probs=LP) | kwargs
    with pytest.raises(error, match=match):
        crnn_fast.ctc_greedy_decode(**args)


@pytest.mark.parametrize(
    "lengths, blank, match",
    [
        (torch.tensor([6, 9, 1]), 0, r"input_lengths\[1\] = 9 is outside"),
        (torch.tensor([6, -3, 1]), 0, r"input_lengths\[1\] = -3 is outside"),
        (torch.tensor([6, 6]), 0, r"input_lengths must have shape"),
        (torch.tensor([6, 6, 6], dtype=torch.int32), 0, "input_lengths must be int64"),
        (torch.tensor([6, 6, 6]), 7, r"blank must be in \[0, 5\)"),
    ],
)
def test_kernel_checks_direct_op_calls(lengths, blank, match):
    """Callers who bypass the Python wrapper still get errors, not out-of-bounds reads."""
    with pytest.raises(RuntimeError, match=match):
        torch.ops.crnn_fast.ctc_greedy_decode(LP, lengths, blank)
