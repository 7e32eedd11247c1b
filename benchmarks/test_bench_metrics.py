"""Sequence metrics from token tensors: crnn_fast's fused op against the string path
(tensors -> Python strings -> rapidfuzz / editdistance), on the same pairs. Each
anchor row checks that it computes the same CER."""

import pytest
import torch
from conftest import DEVICES, record, synchronized

import crnn_fast


def pairs(n, width, vocab=62, seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.randint(1, vocab + 1, (n, width), generator=g, dtype=torch.int32)
    hyp = ref.clone()
    noise = torch.rand(n, width, generator=g) < 0.1
    hyp[noise] = torch.randint(1, vocab + 1, (int(noise.sum()),), generator=g, dtype=torch.int32)
    lengths = torch.full((n,), width, dtype=torch.int32)
    return hyp, lengths, ref, lengths


def to_strings(tokens, lengths):
    return ["".join(map(chr, row[:n])) for row, n in zip(tokens.tolist(), lengths.tolist())]


@pytest.fixture(params=[5, 512], ids=["5-tokens", "512-tokens"])
def batch(request, sizes):
    n = sizes[0] if request.param == 5 else max(1, sizes[0] // 10)
    return request.param, pairs(n, request.param)


@pytest.mark.parametrize("device", DEVICES)
def test_metrics_crnn_fast(benchmark, batch, device):
    width, tensors = batch
    tensors = [t.to(device) for t in tensors]
    record(benchmark, f"metrics {width} tokens", tensors[0].shape[0], library=f"crnn_fast {device}", device=device)
    benchmark(synchronized(crnn_fast.sequence_metrics, device), *tensors)


def check_cer(benchmark, cer, tensors):
    expected = crnn_fast.sequence_metrics(*tensors)["cer"]
    benchmark.extra_info["same_cer"] = bool(cer == pytest.approx(expected))
    assert cer == pytest.approx(expected)


def test_metrics_rapidfuzz_strings(benchmark, batch):
    process = pytest.importorskip("rapidfuzz.process")
    from rapidfuzz.distance import Levenshtein

    width, (hyp, hl, ref, rl) = batch
    record(benchmark, f"metrics {width} tokens", hyp.shape[0], library="rapidfuzz cpdist", device="cpu")

    def string_path():
        h, r = to_strings(hyp, hl), to_strings(ref, rl)
        d = process.cpdist(h, r, scorer=Levenshtein.distance, workers=-1)
        return d.sum() / sum(map(len, r))

    check_cer(benchmark, benchmark(string_path), (hyp, hl, ref, rl))


def test_metrics_editdistance_strings(benchmark, batch):
    editdistance = pytest.importorskip("editdistance")
    width, (hyp, hl, ref, rl) = batch
    record(benchmark, f"metrics {width} tokens", hyp.shape[0], library="editdistance", device="cpu")

    def string_path():
        h, r = to_strings(hyp, hl), to_strings(ref, rl)
        return sum(editdistance.eval(a, b) for a, b in zip(h, r)) / sum(map(len, r))

    check_cer(benchmark, benchmark.pedantic(string_path, rounds=1, iterations=1), (hyp, hl, ref, rl))
