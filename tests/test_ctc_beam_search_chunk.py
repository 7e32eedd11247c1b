"""Streaming beam search: ctc_beam_search_chunk and the ctcdecode-style online decoder
against decoding whole (the offline op, itself tested against the pure-Python
reference) and against the reference directly."""

import dataclasses
import math
import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from conftest import CUDA
from test_ctc_beam_search import assert_row_matches, draw_inputs, random_log_probs

import crnn_fast


def stream(log_probs, lengths, cuts, **options):
    """Decodes (B, T, C) ``log_probs`` in the chunks that ``cuts`` (frame indices) make,
    each row stopping at its length; returns the last result and state."""
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    result, state = None, None
    for lo, hi in zip([0, *cuts], [*cuts, log_probs.shape[1]]):
        chunk_lengths = (lengths - lo).clamp(0, hi - lo)
        result, state = crnn_fast.ctc_beam_search_chunk(log_probs[:, lo:hi], chunk_lengths, state=state, **options)
    return result, state


def assert_same_as_whole(got, want):
    """A streamed result equals the offline op's, bit for bit; its rows are as wide as
    the longest prefix of the state, the offline ones T wide."""
    width = got.tokens.shape[2]
    assert torch.equal(got.lengths, want.lengths)
    assert torch.equal(got.scores, want.scores)
    assert torch.equal(got.tokens, want.tokens[..., :width])
    assert torch.equal(got.timesteps, want.timesteps[..., :width])
    assert want.tokens[..., width:].eq(-1).all()


def random_cuts(T, seed):
    rng = random.Random(seed)
    return sorted(rng.sample(range(T + 1), rng.randint(0, min(T + 1, 6))))


OPTIONS = [
    dict(beam_width=10, top_paths=3),
    dict(beam_width=1),
    dict(beam_width=16, top_paths=16, blank=4),
    dict(beam_width=8, top_paths=2, blank_penalty=0.7),
    dict(beam_width=8, top_paths=4, cutoff_top_n=3),
    dict(beam_width=8, top_paths=4, cutoff_prob=0.8),
    dict(beam_width=70, top_paths=5),  # past the CPU's sorted-stays path (64)
]


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_chunked_equals_whole(device, options):
    """Rows that end inside a chunk, at a chunk's edge, before the first chunk, and
    chunks of one frame, of none and of everything."""
    B, T, C = 6, 23, 9
    log_probs = random_log_probs(B, T, C, seed=3, device=device)
    lengths = torch.tensor([23, 17, 0, 8, 23, 1])
    want = crnn_fast.ctc_beam_search(log_probs, lengths, **options)
    for cuts in ([], [8], [1, 2, 3, 8, 8, 9, 22], [0, 0, 23], random_cuts(T, 1), random_cuts(T, 2)):
        got, state = stream(log_probs, lengths, cuts, **options)
        assert_same_as_whole(got, want)
        assert got.tokens.device == log_probs.device
        assert torch.equal(state.frames.cpu(), lengths)


@given(
    B=st.integers(0, 3),
    T=st.integers(0, 14),
    C=st.integers(2, 10),
    beam_width=st.integers(1, 12),
    data=st.data(),
)
def test_property_chunked_equals_whole_and_reference(B, T, C, beam_width, data):
    """Any chunking, under every option, gives the offline op's beams exactly, and they
    match the pure-Python reference."""
    options = dict(
        beam_width=beam_width,
        top_paths=data.draw(st.integers(1, beam_width)),
        blank=data.draw(st.integers(0, C - 1)),
        blank_penalty=data.draw(st.sampled_from([0.0, 0.5])),
        cutoff_top_n=data.draw(st.none() | st.integers(1, C)),
        cutoff_prob=data.draw(st.sampled_from([1.0, 0.9])),
    )
    lengths, log_probs = draw_inputs(data, B, T, C)
    if data.draw(st.booleans()):  # ties
        log_probs = (log_probs * 2).round() / 2
    cuts = sorted(data.draw(st.lists(st.integers(0, T), max_size=5)))
    got, _ = stream(log_probs, lengths, cuts, **options)
    assert_same_as_whole(got, crnn_fast.ctc_beam_search(log_probs, lengths, **options))
    reference = {k: options[k] for k in ("blank_penalty", "cutoff_top_n", "cutoff_prob")}
    for b in range(B):
        assert_row_matches(got, b, log_probs, lengths[b], beam_width, options["top_paths"], options["blank"],
                           **reference)


@CUDA
@given(B=st.integers(1, 20), T=st.integers(1, 40), C=st.integers(2, 200), beam_width=st.integers(1, 40),
       data=st.data())
def test_cuda_chunked_equals_cpu(B, T, C, beam_width, data):
    options = dict(beam_width=beam_width, top_paths=data.draw(st.integers(1, beam_width)),
                   blank=data.draw(st.integers(0, C - 1)), cutoff_top_n=data.draw(st.sampled_from([None, 5])))
    lengths, log_probs = draw_inputs(data, B, T, C)
    cuts = sorted(data.draw(st.lists(st.integers(0, T), max_size=5)))
    want, _ = stream(log_probs, lengths, cuts, **options)
    got, _ = stream(log_probs.cuda(), lengths, cuts, **options)
    for name in ("tokens", "lengths", "timesteps"):
        assert torch.equal(getattr(got, name).cpu(), getattr(want, name)), name
    torch.testing.assert_close(got.scores.cpu(), want.scores, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_dtypes_and_strides(device, dtype):
    log_probs = random_log_probs(4, 20, 6, seed=8, dtype=dtype, device=device)
    strided = log_probs.transpose(0, 1).contiguous().transpose(0, 1)
    got, _ = stream(strided, [20, 20, 11, 3], [5, 13], beam_width=6, top_paths=2)
    assert_same_as_whole(got, crnn_fast.ctc_beam_search(log_probs, [20, 20, 11, 3], beam_width=6, top_paths=2))


def test_state_stays_as_small_as_its_prefixes(device):
    """Blank-dominated frames: a thousand frames in chunks of 8 leave a tree of a few
    dozen nodes, not one per frame."""
    logits = torch.randn(2, 1000, 5, generator=torch.Generator().manual_seed(0))
    logits[:, :, 0] += 12.0
    logits[:, 500, 3] += 30.0  # one label
    log_probs = logits.log_softmax(-1).to(device)
    result, state = stream(log_probs, [1000, 1000], list(range(8, 1000, 8)), beam_width=4)
    assert state.nodes.shape[1] <= 2 * (4 * 4 + 4 * 8)  # twice: the beam's nodes and room for a chunk
    assert result.tokens[:, 0].tolist() == [[3], [3]] and result.timesteps[:, 0].tolist() == [[500], [500]]


def test_long_streams_compact_their_trees_and_stay_exact(device):
    """Many labels (random frames) over 400 frames in chunks of 5: the trees fill up and
    are compacted again and again, and the beams are still those of decoding whole."""
    log_probs = random_log_probs(3, 400, 6, seed=11, peaky=1.0, device=device)
    want = crnn_fast.ctc_beam_search(log_probs, beam_width=8, top_paths=8)
    state, compactions = None, 0
    for lo in range(0, 400, 5):
        before = state
        result, state = crnn_fast.ctc_beam_search_chunk(log_probs[:, lo:lo + 5], beam_width=8, top_paths=8,
                                                        state=state)
        compactions += before is not None and state.nodes.data_ptr() != before.nodes.data_ptr()
    assert_same_as_whole(result, want)
    assert compactions >= 3 and state.nodes.shape[1] < 8 * 400 // 2


def test_compaction_keeps_every_prefix(device):
    log_probs = random_log_probs(4, 30, 5, seed=12, device=device)
    _, state = stream(log_probs, [30, 30, 12, 0], [4, 9, 17], beam_width=6)
    beams, nodes, used = torch.ops.crnn_fast.ctc_beam_state_compact(state.beams, state.progress, state.nodes,
                                                                     state.nodes_used)
    compacted = dataclasses.replace(state, beams=beams, nodes=nodes, nodes_used=used)
    assert (used <= state.nodes_used).all() and (used < state.nodes_used).any()
    assert all(torch.equal(a, b) for a, b in zip(compacted.result(6), state.result(6)))


def test_a_state_can_be_decoded_again(device):
    """States stay valid: the same state and chunk give the same result twice, and the
    first continuation still reads back the same after the second (they share a tree)."""
    log_probs = random_log_probs(2, 12, 5, seed=2, device=device)
    _, state = crnn_fast.ctc_beam_search_chunk(log_probs[:, :6], beam_width=4)
    first, first_state = crnn_fast.ctc_beam_search_chunk(log_probs[:, 6:], state=state, beam_width=4, top_paths=4)
    second, _ = crnn_fast.ctc_beam_search_chunk(log_probs[:, 6:], state=state, beam_width=4, top_paths=4)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert all(torch.equal(a, b) for a, b in zip(first, first_state.result(4)))


def test_reusing_a_state_changes_neither_it_nor_the_trees_size(device):
    """A start state (or any state) decoded again gives the same state each time: its
    counters are not advanced by the chunks decoded from it, and the trees do not grow."""
    log_probs = random_log_probs(2, 50, 6, seed=5, device=device)
    start = crnn_fast.BeamState.start(2, 8, device)
    runs = [crnn_fast.ctc_beam_search_chunk(log_probs, beam_width=8, state=start)[1] for _ in range(3)]
    assert start.nodes_used.eq(0).all() and start.nodes.shape[1] == 0
    assert len({r.nodes.shape[1] for r in runs}) == 1
    assert all(torch.equal(r.nodes_used, runs[0].nodes_used) for r in runs)


def test_a_tree_shrinks_again_after_a_large_chunk(device):
    """A long first chunk sizes the tree for K nodes a frame; at the next compaction it
    is resized to what the beam then reaches."""
    log_probs = random_log_probs(1, 600, 5, seed=6, device=device)
    result, state = crnn_fast.ctc_beam_search_chunk(log_probs[:, :400], beam_width=8)
    large = state.nodes.shape[1]
    for lo in range(400, 600, 2):
        result, state = crnn_fast.ctc_beam_search_chunk(log_probs[:, lo:lo + 2], beam_width=8, state=state)
    assert state.nodes.shape[1] < large // 4
    assert_same_as_whole(result, crnn_fast.ctc_beam_search(log_probs, beam_width=8))


def test_state_rows_and_results_are_safe_to_use(device):
    log_probs = random_log_probs(3, 10, 5, seed=7, device=device)
    result, state = crnn_fast.ctc_beam_search_chunk(log_probs, beam_width=4, top_paths=2)
    assert torch.equal(state.rows(-1).beams, state.beams[2:]) and state.rows(slice(1, None)).batch_size == 2
    with pytest.raises(IndexError):
        state.rows(3)
    with pytest.raises(ValueError, match="a slice with step 1"):
        state.rows(slice(0, None, 2))
    result.lengths.zero_()  # the caller's copy, not the state's
    assert state.result(2).lengths.ne(0).any()
    assert state != state.rows(slice(None))  # identity, not an elementwise tensor comparison


def test_opcheck(device):
    log_probs = random_log_probs(3, 8, 6, seed=4, device=device)
    lengths = torch.tensor([8, 0, 5], device=device)
    _, s = crnn_fast.ctc_beam_search_chunk(log_probs, lengths, beam_width=4)
    s = dataclasses.replace(s, nodes=torch.nn.functional.pad(s.nodes, (0, 0, 0, 1000)))  # room for opcheck's calls
    op = torch.ops.crnn_fast
    # Not test_aot_dispatch: each call appends to the trees in place, so a second run
    # (eager, then traced) numbers its nodes after the first's.
    torch.library.opcheck(op.ctc_beam_search_chunk.default,
                          (log_probs, lengths, s.beams, s.progress, s.nodes, s.nodes_used, 0, 0.0, 6, 1.0),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    torch.library.opcheck(op.ctc_beam_state_read.default, (s.beams, s.progress, s.nodes, s.nodes_used, 2, 9))
    torch.library.opcheck(op.ctc_beam_state_compact.default, (s.beams, s.progress, s.nodes, s.nodes_used))


# ------------------------------------------------------------ the online decoder

LABELS = ["_"] + list("abcdefg")


def test_online_decoder_streams_like_the_offline_one(device):
    """Streams that start and end at different chunks, rows in any order, as ctcdecode's
    online decoder is used: each stream's results equal CTCBeamDecoder's on its frames so far."""
    options = dict(beam_width=6, cutoff_top_n=5, log_probs_input=True)
    online, offline = crnn_fast.OnlineCTCBeamDecoder(LABELS, **options), crnn_fast.CTCBeamDecoder(LABELS, **options)
    log_probs = random_log_probs(3, 30, len(LABELS), seed=6, device=device)
    states = [crnn_fast.DecoderState(online) for _ in range(3)]
    # (stream, first frame, frames) per row, per call: stream 2 joins late, stream 0 ends first.
    calls = [[(0, 0, 10), (1, 0, 4)], [(1, 4, 10), (0, 10, 10), (2, 0, 7)], [(2, 7, 10), (1, 14, 16)]]
    ends = {0: 1, 1: 2, 2: 2}
    for i, call in enumerate(calls):
        frames = max(n for _, _, n in call)
        chunk = torch.stack([log_probs[s, lo:lo + frames] for s, lo, _ in call])
        seq_lens = torch.tensor([n for _, _, n in call])
        beams, scores, timesteps, lens = online.decode(chunk, [states[s] for s, _, _ in call],
                                                       [ends[s] == i for s, _, _ in call], seq_lens)
        for row, (s, lo, n) in enumerate(call):
            want = offline.decode(log_probs[s:s + 1, : lo + n])
            assert torch.equal(lens[row], want[3][0]) and torch.equal(scores[row], want[1][0])
            assert torch.equal(padded(beams[row], 30), padded(want[0][0], 30))
            assert torch.equal(padded(timesteps[row], 30), padded(want[2][0], 30))


def padded(rows, width):
    """(K, W) label or timestep rows padded with -1 to ``width``, for rows of two widths."""
    return torch.nn.functional.pad(rows, (0, width - rows.shape[1]), value=-1)


def test_online_decoder_takes_probabilities_like_ctcdecode():
    decoder = crnn_fast.OnlineCTCBeamDecoder(LABELS, beam_width=4)
    probs = random_log_probs(2, 9, len(LABELS), seed=1).exp()
    states = [crnn_fast.DecoderState(decoder) for _ in range(2)]
    decoder.decode(probs[:, :4], states, [False, False])
    beams, scores, timesteps, lens = decoder.decode(probs[:, 4:], states, [True, True])
    want = crnn_fast.CTCBeamDecoder(LABELS, beam_width=4).decode(probs)
    assert beams.dtype == timesteps.dtype == lens.dtype == torch.int32 and scores.shape == (2, 4)
    assert torch.equal(lens, want[3]) and torch.equal(beams, want[0][..., : beams.shape[2]])


def make_online(beam_width=4):
    decoder = crnn_fast.OnlineCTCBeamDecoder(LABELS, beam_width=beam_width, log_probs_input=True)
    return decoder, [crnn_fast.DecoderState(decoder) for _ in range(2)]


def test_online_decoder_rejects_a_finished_state():
    decoder, states = make_online()
    log_probs = random_log_probs(2, 6, len(LABELS), seed=0)
    decoder.decode(log_probs, states, torch.tensor([True, False]))  # is_eos_s as a tensor, as ctcdecode takes it
    with pytest.raises(ValueError, match=r"states\[0\] has reached its end of stream"):
        decoder.decode(log_probs, states, [False, False])


def test_online_decoder_rejects_states_of_another_decoder():
    decoder, states = make_online()
    other, other_states = make_online(beam_width=8)
    log_probs = random_log_probs(2, 6, len(LABELS), seed=0)
    with pytest.raises(ValueError, match=r"states\[1\] belongs to another decoder"):
        decoder.decode(log_probs, [states[0], other_states[0]], [False, False])
    with pytest.raises(TypeError, match="decoder must be an OnlineCTCBeamDecoder"):
        crnn_fast.DecoderState(crnn_fast.CTCBeamDecoder(LABELS))


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda lp, st, eos: (lp[..., :5], st, eos), ValueError, "probs has 5 classes but labels has 8"),
        (lambda lp, st, eos: (lp, st[:1], eos), ValueError, r"states must be a sequence of one DecoderState per row"),
        (lambda lp, st, eos: (lp, st, eos[:1]), ValueError, r"is_eos_s must be a sequence of one bool per row"),
        (lambda lp, st, eos: (lp, [st[0], st[0]], eos), ValueError, "states must be distinct"),
        (lambda lp, st, eos: (lp, [st[0], "state"], eos), TypeError, r"states\[1\] must be a DecoderState"),
    ],
)
def test_online_decoder_rejects(change, error, match):
    decoder, states = make_online()
    log_probs = random_log_probs(2, 6, len(LABELS), seed=0)
    with pytest.raises(error, match=match):
        decoder.decode(*change(log_probs, states, [False, False]))


def test_nan_in_a_later_chunk_names_it_and_keeps_the_state(device):
    decoder, states = make_online()
    log_probs = random_log_probs(2, 12, len(LABELS), seed=0, device=device)
    decoder.decode(log_probs[:, :6], states, [False, False])
    bad = log_probs[:, 6:].clone()
    bad[1, 2, 3] = math.nan
    with pytest.raises(ValueError, match=r"log_probs\[1, 2, 3\] is nan"):
        decoder.decode(bad, states, [False, False])
    got = decoder.decode(log_probs[:, 6:], states, [True, True])  # the states as they were before
    want = crnn_fast.CTCBeamDecoder(LABELS, beam_width=4, log_probs_input=True).decode(log_probs)
    assert torch.equal(got[0], want[0][..., : got[0].shape[2]]) and torch.equal(got[3], want[3])


# ------------------------------------------------------------------ bad states

def test_chunk_rejects_mismatched_states():
    log_probs = random_log_probs(2, 6, 5, seed=0)
    _, state = crnn_fast.ctc_beam_search_chunk(log_probs, beam_width=4)
    with pytest.raises(ValueError, match="state was decoded with beam_width=4, got beam_width=8"):
        crnn_fast.ctc_beam_search_chunk(log_probs, beam_width=8, state=state)
    with pytest.raises(ValueError, match="state was decoded from chunks of C=5 classes, this chunk has C=6"):
        crnn_fast.ctc_beam_search_chunk(random_log_probs(2, 6, 6, seed=0), beam_width=4, state=state)
    with pytest.raises(ValueError, match="state holds 2 streams but log_probs has B=3"):
        crnn_fast.ctc_beam_search_chunk(random_log_probs(3, 6, 5, seed=0), beam_width=4, state=state)
    with pytest.raises(TypeError, match="state must be a BeamState"):
        crnn_fast.ctc_beam_search_chunk(log_probs, beam_width=4, state=state.beams)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda s: s.progress.__setitem__((1, 1), 99),  # more entries than the beam
        lambda s: s.progress.__setitem__((1, 0), -5),  # negative frames
        lambda s: s.progress.__setitem__((1, 0), 2**31 - 3),  # timesteps past int32
        # fields of beam::Entry (csrc/beam_search.h) as int32 words: last 8, len 9, parent 13, node 14
        lambda s: s.beams.view(torch.int32)[1, 0, 8].fill_(10**6),  # an entry's last label past C
        lambda s: s.beams.view(torch.int32)[1, 0, 9].fill_(10**6),  # an entry longer than the frames
        lambda s: s.beams.view(torch.int32)[1, 0, 13].fill_(77),  # a parent outside the beam
        lambda s: s.beams.view(torch.int32)[1, 0, 14].fill_(10**6),  # a node outside the tree
    ],
)
def test_chunk_rejects_a_corrupt_state_without_reading_out_of_bounds(device, corrupt):
    log_probs = random_log_probs(2, 6, 5, seed=0, device=device)
    _, state = crnn_fast.ctc_beam_search_chunk(log_probs, beam_width=4)
    corrupt(state)
    with pytest.raises(ValueError, match="state row 1 is not a beam state that ctc_beam_search_chunk returned"):
        crnn_fast.ctc_beam_search_chunk(log_probs, beam_width=4, state=state)


def test_state_ops_check_direct_calls():
    log_probs = random_log_probs(2, 6, 5, seed=0)
    _, s = crnn_fast.ctc_beam_search_chunk(log_probs, beam_width=4)
    lengths = torch.full((2,), 6)
    op = torch.ops.crnn_fast
    with pytest.raises(RuntimeError, match=r"state beams must be an int64 \(B, beam_width, 8\) tensor"):
        op.ctc_beam_search_chunk(log_probs, lengths, s.beams[..., :3], s.progress, s.nodes, s.nodes_used, 0, 0.0, 5,
                                 1.0)
    with pytest.raises(RuntimeError, match=r"state progress must be an int64 \(B, 2\) tensor"):
        op.ctc_beam_search_chunk(log_probs, lengths, s.beams, s.progress[:1], s.nodes, s.nodes_used, 0, 0.0, 5, 1.0)
    with pytest.raises(RuntimeError, match=r"state nodes must be a contiguous int32 \(B, N, 3\) tensor"):
        op.ctc_beam_search_chunk(log_probs, lengths, s.beams, s.progress, s.nodes.transpose(0, 1), s.nodes_used, 0,
                                 0.0, 5, 1.0)
    with pytest.raises(RuntimeError, match="the state must hold B streams"):
        op.ctc_beam_search_chunk(log_probs[:1], lengths[:1], s.beams, s.progress, s.nodes, s.nodes_used, 0, 0.0, 5,
                                 1.0)
    full = s.nodes_used.clone()
    full[1] = 10**9  # no room in row 1's tree: the kernel leaves it alone
    scores = op.ctc_beam_search_chunk(log_probs, lengths, s.beams, s.progress, s.nodes, full, 0, 0.0, 5, 1.0)[2]
    assert scores[1].isnan().all() and not scores[0].isnan().any() and full[1] == 10**9
    with pytest.raises(RuntimeError, match=r"top_paths must be in \[1, beam_width\]"):
        op.ctc_beam_state_read(s.beams, s.progress, s.nodes, s.nodes_used, 5, 3)
    with pytest.raises(RuntimeError, match="state nodes_used must be a contiguous int64"):
        op.ctc_beam_state_compact(s.beams, s.progress, s.nodes, s.nodes_used.int())


def test_reading_a_corrupt_tree_stays_in_bounds(device):
    """Nodes that point anywhere give wrong labels, never a crash or an endless walk."""
    log_probs = random_log_probs(2, 20, 5, seed=0, device=device)
    _, state = crnn_fast.ctc_beam_search_chunk(log_probs, beam_width=4)
    for nodes in (state.nodes.flip(1), torch.full_like(state.nodes, 10**6), torch.full_like(state.nodes, -7),
                  torch.zeros_like(state.nodes)):
        corrupt = dataclasses.replace(state, nodes=nodes)
        tokens, timesteps = torch.ops.crnn_fast.ctc_beam_state_read(corrupt.beams, corrupt.progress, nodes,
                                                                    corrupt.nodes_used, 4, 20)
        assert tokens.shape == timesteps.shape == (2, 4, 20)
        torch.ops.crnn_fast.ctc_beam_state_compact(corrupt.beams, corrupt.progress, nodes, corrupt.nodes_used)
