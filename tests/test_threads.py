"""Ops called concurrently from several Python threads give the sequential results."""

from concurrent.futures import ThreadPoolExecutor

import torch

import crnn_fast


def calls(device):
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(12):
        lp = torch.randn(64, 20 + i, 12, generator=g).log_softmax(-1).to(device)
        hyp = torch.randint(0, 9, (64, 70 + i), generator=g, dtype=torch.int32).to(device)
        ref = torch.randint(0, 9, (64, 60 + i), generator=g, dtype=torch.int32).to(device)
        hl = torch.randint(0, 71 + i, (64,), generator=g).to(device)
        rl = torch.randint(0, 61 + i, (64,), generator=g).to(device)
        out += [
            lambda lp=lp: crnn_fast.ctc_beam_search(lp, beam_width=8, top_paths=2),
            lambda lp=lp: crnn_fast.ctc_greedy_decode(lp),
            lambda a=(hyp, hl, ref, rl): crnn_fast.edit_distance(*a),
            lambda a=(hyp, hl, ref, rl): crnn_fast.sequence_metrics(*a, return_distances=True),
        ]
    return out


def flat(result):
    if isinstance(result, torch.Tensor):
        return [result.cpu()]
    if isinstance(result, dict):
        return [torch.as_tensor(v).cpu() for v in result.values()]
    return [t for part in result for t in flat(part)]


def test_concurrent_calls_match_sequential(device):
    fns = calls(device)
    sequential = [flat(fn()) for fn in fns]
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=8) as pool:
            concurrent = list(pool.map(lambda fn: flat(fn()), fns * 2))
        for got, want in zip(concurrent, sequential * 2):
            assert len(got) == len(want)
            for a, b in zip(got, want):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
