"""Plain Python/PyTorch references the kernels are tested against: slow, obvious, trusted."""

import ctypes
import ctypes.util
import math

import numpy as np
import torch


def ctc_greedy_decode_reference(log_probs, lengths, blank):
    """Per row: argmax per frame (torch.argmax's tie and NaN rules), collapse repeats, drop blanks."""
    best = log_probs.detach().cpu().double().argmax(-1)
    rows = []
    for b in range(log_probs.shape[0]):
        path = best[b, : int(lengths[b])].tolist()
        rows.append([c for t, c in enumerate(path) if c != blank and (t == 0 or c != path[t - 1])])
    return rows


def pad_rows(rows, width):
    """(tokens (B, width) int32 padded with -1, lengths (B,) int32) from lists of labels."""
    tokens = torch.full((len(rows), width), -1, dtype=torch.int32)
    for b, row in enumerate(rows):
        tokens[b, : len(row)] = torch.tensor(row, dtype=torch.int32)
    return tokens, torch.tensor([len(r) for r in rows], dtype=torch.int32)


def levenshtein_reference(a, b):
    """Textbook dynamic programme over two lists."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def rows_of(tokens, lengths):
    """Python lists of the first lengths[b] tokens of each row."""
    return [tokens[b, : int(lengths[b])].tolist() for b in range(tokens.shape[0])]


# The beam search reference computes in float32, like the kernels, and with the C
# library's expf and log1pf, as the CPU kernel does: prefixes whose scores tie in
# float32 (common on quantised inputs) then tie here too, and are ranked by the same
# rule. (In float64, such a tie is often broken by rounding, and the beams part ways.)
_libm = ctypes.CDLL(ctypes.util.find_library("m"))
for _name in ("expf", "log1pf"):
    getattr(_libm, _name).restype = ctypes.c_float
    getattr(_libm, _name).argtypes = [ctypes.c_float]


def _f32(x):
    return float(np.float32(x))


def _log_add(a, b):
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi, lo = max(a, b), min(a, b)
    return _f32(hi + _libm.log1pf(_libm.expf(_f32(lo - hi))))


def ctc_beam_search_reference(frames, beam_width, blank, blank_penalty=0.0, cutoff_top_n=None, cutoff_prob=1.0):
    """Prefix beam search over ``frames`` (T lists of C log-probs), every candidate
    enumerated and sorted: the kernels' algorithm without their shortcuts, in float32.
    Returns the final beam, best first, as (labels, score, timesteps) tuples."""
    neg = -math.inf
    frames = [[_f32(v) for v in frame] for frame in frames]
    beam = [dict(prefix=(), pb=0.0, pnb=neg, last_lp=neg, times=[])]
    for t, frame in enumerate(frames):
        ranked = sorted(range(len(frame)), key=lambda c: (-frame[c], c))
        allowed, before = set(), 0.0
        for r, c in enumerate(ranked):
            # ctcdecode's rule; cutoff_prob 1 means none (probabilities may sum past 1)
            if (cutoff_top_n is not None and r >= cutoff_top_n) or (cutoff_prob < 1.0 and not before < cutoff_prob):
                break
            allowed.add(c)
            before += math.exp(frame[c])
        lp = lambda c: frame[c] if c in allowed else neg  # noqa: E731
        blank_lp = _f32(lp(blank) - _f32(blank_penalty))
        index = {e["prefix"]: e for e in beam}
        score = lambda e: _log_add(e["pb"], e["pnb"])  # noqa: E731
        candidates = []
        for e in beam:  # the prefix kept
            s = dict(prefix=e["prefix"], pb=_f32(score(e) + blank_lp), pnb=neg, last_lp=e["last_lp"], times=list(e["times"]))
            if e["prefix"]:
                last = e["prefix"][-1]
                s["pnb"] = _f32(e["pnb"] + lp(last))
                parent = index.get(e["prefix"][:-1])
                if parent is not None and lp(last) > neg:
                    via = parent["pb"] if parent["prefix"][-1:] == (last,) else score(parent)
                    s["pnb"] = _log_add(s["pnb"], _f32(via + lp(last)))
                    if lp(last) > s["last_lp"]:
                        s["last_lp"], s["times"][-1] = lp(last), t
            candidates.append(s)
        for e in beam:  # the prefix extended by a label, to a prefix not in the beam
            for c in ranked:
                new = e["prefix"] + (c,)
                if c == blank or c not in allowed or new in index:
                    continue
                via = e["pb"] if e["prefix"][-1:] == (c,) else score(e)
                candidates.append(dict(prefix=new, pb=neg, pnb=_f32(via + frame[c]), last_lp=frame[c], times=e["times"] + [t]))
        ranked_candidates = sorted(
            (i for i, cand in enumerate(candidates) if score(cand) > neg), key=lambda i: (-score(candidates[i]), i)
        )
        beam = [candidates[i] for i in ranked_candidates[:beam_width]]
    return [(list(e["prefix"]), _log_add(e["pb"], e["pnb"]), e["times"]) for e in beam]
