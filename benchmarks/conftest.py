"""Shared inputs of the benchmark suite.

Run:  pytest benchmarks/ --benchmark-only --benchmark-json results/bench-<machine>.json
      python -m benchmarks.report results/bench-<machine>.json      # table + plot
Size: CRNN_FAST_BENCH_N sequences for crnn_fast (default 100000) and
      CRNN_FAST_BENCH_ANCHOR_N for the anchors that decode one sequence per Python
      call (default 2000; their rows report per-sequence time on that subset). The
      anchors run on as many worker processes as crnn_fast has threads
      (torch.get_num_threads()), each decoding a contiguous share of the sequences;
      the workers are forked holding the inputs, so that no input is copied while
      timed.
      CRNN_FAST_BENCH_IMAGES images for the end-to-end rows (default: 100000 with a
      GPU, 10000 without). Decoding rows run CRNN_FAST_BENCH_ROUNDS rounds (default
      3; the report takes the median), since a shared machine can slow one round of
      either side by a third.
"""

import contextlib
import itertools
import multiprocessing
import os
import platform

import pytest
import torch

N = int(os.environ.get("CRNN_FAST_BENCH_N", "100000"))
ANCHOR_N = min(N, int(os.environ.get("CRNN_FAST_BENCH_ANCHOR_N", "2000")))
IMAGES = int(os.environ.get("CRNN_FAST_BENCH_IMAGES", "100000" if torch.cuda.is_available() else "10000"))
ROUNDS = int(os.environ.get("CRNN_FAST_BENCH_ROUNDS", "3"))

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")),
]


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["torch"] = torch.__version__
    machine_info["cuda"] = torch.version.cuda
    machine_info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    machine_info["cpu_threads"] = torch.get_num_threads()
    machine_info["processor"] = platform.processor() or platform.machine()


def peaky_log_probs(n, frames, classes, seed=0):
    """CTC outputs shaped like a trained model's: mostly blank, with label spikes."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, frames, classes, generator=g) * 2
    spikes = torch.randint(1, classes, (n, frames), generator=g)
    logits.scatter_add_(2, spikes.unsqueeze(-1), torch.full((n, frames, 1), 4.0))
    logits[:, :, 0] += 3.0 * (torch.rand(n, frames, generator=g) < 0.6)
    return logits.log_softmax(-1)


WORKERS = torch.get_num_threads()


_HELD = None  # the inputs of the pool being forked, inherited by its workers


def _run_share(worker, fn, args):
    n = len(_HELD)
    return fn(_HELD[n * worker // WORKERS: n * (worker + 1) // WORKERS], *args)


@contextlib.contextmanager
def anchor_pool(items):
    """WORKERS processes forked holding ``items``, so that the anchors get the cores
    crnn_fast gets and the timed call copies no input. Processes rather than threads:
    some anchors hold the GIL while they decode. Yields ``run(fn, *args)``, which calls
    ``fn(share, *args)`` on each worker's contiguous share of ``items`` and returns the
    results in order. The work sent to the workers uses no torch."""
    global _HELD
    _HELD = items
    try:
        with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
            pool.map(abs, range(WORKERS))  # every worker started before timing

            def run(fn, *args):
                shares = pool.starmap(_run_share, [(worker, fn, args) for worker in range(WORKERS)])
                return list(itertools.chain.from_iterable(shares))

            yield run
    finally:
        _HELD = None


def synchronized(fn, device):
    """``fn`` followed by a CUDA synchronize when ``device`` is a GPU, so that a
    benchmark times the kernels and not just their launch."""
    if torch.device(device).type != "cuda":
        return fn

    def run(*args, **kwargs):
        result = fn(*args, **kwargs)
        torch.cuda.synchronize()
        return result

    return run


def record(benchmark, group, items, **extra):
    """Names the row for benchmarks/report.py: ``group`` is the comparison the row
    belongs to and ``items`` the sequences (or pairs, images) one call handles."""
    benchmark.group = group
    benchmark.extra_info.update(group=group, items=items, **extra)


@pytest.fixture(scope="session")
def sizes():
    return N, ANCHOR_N
