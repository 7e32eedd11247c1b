"""End to end: evaluating a CRNN on synthetic CAPTCHAs (forward + decode + metrics),
stage by stage and whole, and training throughput for both architectures.

The model is the shipped one unless CRNN_FAST_BENCH_CHECKPOINT names another
checkpoint (a trained model's peaky outputs make beam search faster than random
weights' would). Images are the synthetic test
split under CRNN_FAST_BENCH_DATA (default: data), generated on first use."""

import os

import numpy as np
import pytest
import torch
from conftest import DEVICES, IMAGES, record, synchronized
from test_bench_decode import run_anchor, run_crnn_fast

import crnn_fast
from crnn_fast import checkpoint, data, evaluate, train
from crnn_fast.model import ARCHS

DATA = os.environ.get("CRNN_FAST_BENCH_DATA", "data")


@pytest.fixture(scope="module")
def test_set():
    return data.synthetic(DATA, "test", IMAGES, progress=False)


@pytest.fixture(scope="module")
def model_outputs(test_set):
    """``get(device)``: the model's log-probs over the test set on ``device``, (N, T, C),
    computed once per device."""
    cache = {}

    def get(device):
        if device not in cache:
            cache[device] = forward_all(load_model(device), test_set.images, device)
        return cache[device]

    return get


def load_model(device):
    return checkpoint.load_model(os.environ.get("CRNN_FAST_BENCH_CHECKPOINT"), device)


@torch.no_grad()
def forward_all(model, images, device):
    outs = []
    step = evaluate.default_batch_size(device)
    for lo in range(0, len(images), step):
        x = torch.from_numpy(np.array(images[lo : lo + step])).to(device)
        with evaluate.autocast(device):
            outs.append(model(x).float())
    return torch.cat(outs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("stage", ["forward", "greedy", "beam 10", "metrics", "evaluate (greedy)", "evaluate (beam 10)"])
def test_evaluate_stages(benchmark, test_set, model_outputs, stage, device):
    device = torch.device(device)
    record(benchmark, f"evaluate {IMAGES} images {device}", IMAGES, library=f"crnn_fast {device}",
           device=device.type, variant=stage)
    run = synchronized(lambda fn, *a, **k: fn(*a, **k), device)
    if stage.startswith("evaluate"):
        decoder = "greedy" if "greedy" in stage else "beam"
        result = benchmark.pedantic(run, args=(evaluate.evaluate, load_model(device), test_set, device),
                                    kwargs=dict(progress=False, decoder=decoder), rounds=1, iterations=1)
        benchmark.extra_info["exact"] = result["exact"]
        return
    if stage == "forward":
        model = load_model(device)
        forward_all(model, test_set.images[: evaluate.default_batch_size(device)], device)  # warm-up
        benchmark.pedantic(run, args=(forward_all, model, test_set.images, device), rounds=1, iterations=1)
        return
    log_probs = model_outputs(device)  # the decoding and metric stages time only themselves
    if stage != "metrics":
        benchmark.pedantic(run, args=(evaluate.decode, log_probs, stage.split()[0]), rounds=1, iterations=1)
        return
    tokens, lengths, _ = evaluate.decode(log_probs, "greedy")
    refs, ref_lengths = evaluate.tokens_of(test_set)
    benchmark.pedantic(run, args=(crnn_fast.sequence_metrics, tokens, lengths, refs.to(device), ref_lengths.to(device)),
                       rounds=1, iterations=1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_training_throughput(benchmark, tmp_path, arch, device):
    """One epoch of the real training loop; the row's images/s is the loop's own."""
    n = min(IMAGES, 20_000 if device == "cuda" else 2_000)
    batch = 256 if device == "cuda" else 64
    config = train.TrainConfig(preset="tiny", arch=arch, epochs=1, batch_size=batch, n_train=n, n_val=256, n_test=256,
                               data_dir=DATA, out=str(tmp_path / "run"), device=device)
    data.synthetic(DATA, "train", n, progress=False)
    record(benchmark, f"training {device}", n - n % batch, library=f"crnn_fast {device}", device=device,
           variant=f"--arch {arch}, batch {batch}")
    benchmark.pedantic(train.train, args=(config,), kwargs=dict(progress=False), rounds=1, iterations=1)
    history = checkpoint.load(tmp_path / "run" / "last.pt")["history"]
    benchmark.extra_info["train_images_per_s"] = history[-1]["train_images_per_s"]


@pytest.mark.parametrize("decoder", ["crnn_fast", "fast-ctc-decode"])
def test_beam_on_model_outputs(benchmark, model_outputs, sizes, decoder):
    """Beam 10 on the model's own outputs, crnn_fast against the fastest anchor: a
    trained model's outputs are peakier than peaky_log_probs, which changes both sides'
    cost."""
    log_probs = model_outputs(torch.device("cpu"))
    group = f"beam 10 on model outputs ({IMAGES} images)"
    if decoder == "crnn_fast":
        run_crnn_fast(benchmark, log_probs, group, 10)
    else:
        run_anchor(benchmark, decoder, log_probs[: sizes[1]], group, 10)
