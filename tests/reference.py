"""Plain Python/PyTorch references the kernels are tested against: slow, obvious, trusted."""

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
