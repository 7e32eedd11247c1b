"""Random batches of padded token-sequence pairs shared by the metric tests."""

import torch


def random_pairs(batch, hyp_width, ref_width, vocab, seed, related=True, dtype=torch.int64):
    """Padded (hyp, hyp_lengths, ref, ref_lengths). With ``related``, each hyp is its
    ref with a few random edits, as a recogniser's output would be."""
    g = torch.Generator().manual_seed(seed)
    ref_lengths = torch.randint(0, ref_width + 1, (batch,), generator=g)
    ref = torch.randint(0, vocab, (batch, ref_width), generator=g)
    hyp = torch.randint(0, vocab, (batch, hyp_width), generator=g)
    hyp_lengths = torch.randint(0, hyp_width + 1, (batch,), generator=g)
    if related:
        for b in range(batch):
            row = ref[b, : ref_lengths[b]].tolist()
            for _ in range(int(torch.randint(0, 4, (), generator=g))):
                op, pos = int(torch.randint(0, 3, (), generator=g)), int(torch.randint(0, len(row) + 1, (), generator=g))
                token = int(torch.randint(0, vocab, (), generator=g))
                if op == 0:
                    row.insert(pos, token)
                elif row and op == 1:
                    row[min(pos, len(row) - 1)] = token
                elif row:
                    del row[min(pos, len(row) - 1)]
            row = row[:hyp_width]
            hyp[b, : len(row)] = torch.tensor(row, dtype=torch.int64)
            hyp_lengths[b] = len(row)
    hyp[torch.arange(hyp_width) >= hyp_lengths[:, None]] = -1  # padding like the decoders'
    ref[torch.arange(ref_width) >= ref_lengths[:, None]] = -1
    return hyp.to(dtype), hyp_lengths, ref.to(dtype), ref_lengths
