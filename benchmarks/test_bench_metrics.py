"""Sequence metrics from token tensors: crnn_fast's fused op against the string path
(tensors -> Python strings -> rapidfuzz / editdistance)."""

import pytest
import torch

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
    return pairs(n, request.param)


def test_metrics_crnn_fast(benchmark, batch):
    benchmark.extra_info["pairs"] = batch[0].shape[0]
    benchmark(crnn_fast.sequence_metrics, *batch)


def test_metrics_rapidfuzz_strings(benchmark, batch):
    process = pytest.importorskip("rapidfuzz.process")
    from rapidfuzz.distance import Levenshtein

    hyp, hl, ref, rl = batch
    benchmark.extra_info["pairs"] = hyp.shape[0]

    def string_path():
        h, r = to_strings(hyp, hl), to_strings(ref, rl)
        d = process.cpdist(h, r, scorer=Levenshtein.distance, workers=-1)
        return d.sum() / sum(map(len, r))

    cer = benchmark(string_path)
    assert cer == pytest.approx(crnn_fast.sequence_metrics(hyp, hl, ref, rl)["cer"])


def test_metrics_editdistance_strings(benchmark, batch):
    editdistance = pytest.importorskip("editdistance")
    hyp, hl, ref, rl = batch
    benchmark.extra_info["pairs"] = hyp.shape[0]

    def string_path():
        h, r = to_strings(hyp, hl), to_strings(ref, rl)
        return sum(editdistance.eval(a, b) for a, b in zip(h, r)) / sum(map(len, r))

    benchmark.pedantic(string_path, rounds=1, iterations=1)
