// Per-pair Levenshtein distance and match counts on the GPU, shared by the
// edit_distance and sequence_metrics kernels. Two kernels, chosen from the padded
// widths alone (no host synchronisation):
//  - both widths <= 64 (words, OCR labels): one thread per pair, one 64-bit block;
//  - otherwise: one warp per pair; the warp compares 64 pattern tokens with a text
//    token in two ballots, and block-to-block carries live in a per-warp workspace.
#pragma once

#include "cuda/cuda_utils.cuh"
#include "levenshtein.h"

namespace crnn_fast {

template <typename tok_t>
struct DeviceRow {
  const tok_t* data;
  int64_t stride;
  int64_t len;
  __device__ tok_t operator[](int64_t i) const { return data[i * stride]; }
};

template <typename tok_t>
struct PairBatch {
  const tok_t* hyp;
  const tok_t* ref;
  const int64_t* hyp_lengths;
  const int64_t* ref_lengths;
  int64_t hyp_strides[2], ref_strides[2];
  int64_t hyp_width, ref_width, batch;
  const int64_t* fold;  // nullptr: no case folding
  int64_t fold_size;

  __device__ DeviceRow<tok_t> hyp_row(int64_t b) const {
    return {hyp + b * hyp_strides[0], hyp_strides[1], clamp_length(hyp_lengths[b], hyp_width)};
  }
  __device__ DeviceRow<tok_t> ref_row(int64_t b) const {
    return {ref + b * ref_strides[0], ref_strides[1], clamp_length(ref_lengths[b], ref_width)};
  }
};

__device__ __forceinline__ int64_t warp_sum(int64_t v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(kFullWarp, v, offset);
  return v;
}

// Adds this warp's totals (held by every lane, summed over lanes) into `totals`.
__device__ __forceinline__ void add_totals(const int64_t (&local)[kNumTotals], unsigned long long* totals) {
  for (int k = 0; k < kNumTotals; ++k) {
    const int64_t sum = warp_sum(local[k]);
    if (threadIdx.x % 32 == 0 && sum != 0) atomicAdd(totals + k, static_cast<unsigned long long>(sum));
  }
}

template <typename tok_t, bool kMetrics>
__global__ void pair_metrics_short_kernel(PairBatch<tok_t> batch, int32_t* __restrict__ distances,
                                          unsigned long long* __restrict__ totals) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t local[kNumTotals] = {};
  if (b < batch.batch) {
    const DeviceRow<tok_t> h = batch.hyp_row(b), r = batch.ref_row(b);
    const DeviceRow<tok_t> a = h.len <= r.len ? h : r;  // pattern: the shorter row, <= 64 tokens
    const DeviceRow<tok_t> t = h.len <= r.len ? r : h;
    int64_t dist = t.len;
    if (a.len > 0) {
      dist = a.len;
      uint64_t pv = ~uint64_t{0}, mv = 0;
      const uint64_t last = uint64_t{1} << (a.len - 1);
      for (int64_t i = 0; i < t.len; ++i) {
        const tok_t c = t[i];
        uint64_t eq = 0;
        for (int64_t j = 0; j < a.len; ++j) eq |= static_cast<uint64_t>(a[j] == c) << j;
        uint64_t hp = 1, hn = 0;
        myers_advance(eq, pv, mv, hp, hn, last);
        dist += static_cast<int64_t>(hp) - static_cast<int64_t>(hn);
      }
    }
    distances[b] = static_cast<int32_t>(dist);
    if (kMetrics) {
      bool folded_equal = h.len == r.len;
      for (int64_t j = 0; j < (h.len < r.len ? h.len : r.len); ++j) {
        local[kMatches] += h[j] == r[j];
        folded_equal = folded_equal &&
                       fold_token(h[j], batch.fold, batch.fold_size) == fold_token(r[j], batch.fold, batch.fold_size);
      }
      local[kExact] = dist == 0;
      local[kExactFolded] = folded_equal;
      local[kEdits] = dist;
      local[kRefTokens] = r.len;
    }
  }
  if (kMetrics) add_totals(local, totals);
}

template <typename tok_t, bool kMetrics>
__global__ void pair_metrics_long_kernel(PairBatch<tok_t> batch, uint64_t* __restrict__ workspace, int64_t words,
                                         int32_t* __restrict__ distances, unsigned long long* __restrict__ totals) {
  const int lane = threadIdx.x % 32;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int64_t num_warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  uint64_t* carry_hp = workspace + warp * 2 * words;  // horizontal deltas leaving the previous block, per column
  uint64_t* carry_hn = carry_hp + words;
  int64_t local[kNumTotals] = {};

  for (int64_t b = warp; b < batch.batch; b += num_warps) {  // uniform per warp
    const DeviceRow<tok_t> h = batch.hyp_row(b), r = batch.ref_row(b);
    const DeviceRow<tok_t> a = h.len <= r.len ? h : r;
    const DeviceRow<tok_t> t = h.len <= r.len ? r : h;
    const int64_t m = a.len, n = t.len;
    int64_t dist = m > 0 ? m : n;
    for (int64_t block = 0; block * 64 < m; ++block) {
      const int64_t lo = block * 64 + lane, hi = lo + 32;
      const bool has_lo = lo < m, has_hi = hi < m;
      const tok_t p_lo = has_lo ? a[lo] : tok_t{}, p_hi = has_hi ? a[hi] : tok_t{};
      const uint64_t last = block_last_row(block, m);
      const bool bottom = (block + 1) * 64 >= m;
      uint64_t pv = ~uint64_t{0}, mv = 0, hp_in = 0, hn_in = 0, hp_out = 0, hn_out = 0;
      tok_t chunk{};
      for (int64_t i = 0; i < n; ++i) {
        const int k = static_cast<int>(i & 31), bit = static_cast<int>(i & 63);
        if (k == 0) chunk = i + lane < n ? t[i + lane] : tok_t{};
        const tok_t c = __shfl_sync(kFullWarp, chunk, k);
        if (bit == 0) {
          hp_in = block == 0 ? ~uint64_t{0} : carry_hp[i >> 6];
          hn_in = block == 0 ? 0 : carry_hn[i >> 6];
          hp_out = hn_out = 0;
        }
        const uint64_t eq = static_cast<uint64_t>(__ballot_sync(kFullWarp, has_lo && p_lo == c)) |
                            static_cast<uint64_t>(__ballot_sync(kFullWarp, has_hi && p_hi == c)) << 32;
        uint64_t hp = (hp_in >> bit) & 1, hn = (hn_in >> bit) & 1;
        myers_advance(eq, pv, mv, hp, hn, last);
        if (bottom) {
          dist += static_cast<int64_t>(hp) - static_cast<int64_t>(hn);
        } else {
          hp_out |= hp << bit;
          hn_out |= hn << bit;
          if (bit == 63 || i == n - 1) {  // uniform: every lane has read this word
            __syncwarp();
            if (lane == 0) {
              carry_hp[i >> 6] = hp_out;
              carry_hn[i >> 6] = hn_out;
            }
          }
        }
      }
      __syncwarp();  // lane 0's carries are read by every lane in the next block
    }
    if (lane == 0) distances[b] = static_cast<int32_t>(dist);
    if (kMetrics) {
      bool folded_equal = true;
      for (int64_t j = lane; j < (h.len < r.len ? h.len : r.len); j += 32) {
        local[kMatches] += h[j] == r[j];
        folded_equal = folded_equal &&
                       fold_token(h[j], batch.fold, batch.fold_size) == fold_token(r[j], batch.fold, batch.fold_size);
      }
      folded_equal = __all_sync(kFullWarp, folded_equal) && h.len == r.len;
      if (lane == 0) {
        local[kExact] += dist == 0;
        local[kExactFolded] += folded_equal;
        local[kEdits] += dist;
        local[kRefTokens] += r.len;
      }
    }
  }
  if (kMetrics) add_totals(local, totals);
}

// Launches the right kernel for the batch on the current stream. `totals` is
// nullptr for distances only.
template <typename tok_t>
void launch_pair_metrics(const Tensor& hyp, Tensor hyp_lengths, const Tensor& ref, Tensor ref_lengths,
                         const int64_t* fold, int64_t fold_size, Tensor& distances, unsigned long long* totals) {
  const int64_t B = hyp.size(0);
  if (B == 0) return;
  hyp_lengths = torch::stable::contiguous(hyp_lengths);
  ref_lengths = torch::stable::contiguous(ref_lengths);
  PairBatch<tok_t> batch{static_cast<const tok_t*>(hyp.const_data_ptr()),
                         static_cast<const tok_t*>(ref.const_data_ptr()),
                         static_cast<const int64_t*>(hyp_lengths.const_data_ptr()),
                         static_cast<const int64_t*>(ref_lengths.const_data_ptr()),
                         {hyp.stride(0), hyp.stride(1)},
                         {ref.stride(0), ref.stride(1)},
                         hyp.size(1),
                         ref.size(1),
                         B,
                         fold,
                         fold_size};
  auto* dist = static_cast<int32_t*>(distances.mutable_data_ptr());
  const cudaStream_t stream = current_stream(hyp);
  constexpr int kThreads = 256;
  if (hyp.size(1) <= 64 && ref.size(1) <= 64) {
    const int64_t blocks = (B + kThreads - 1) / kThreads;
    STD_TORCH_CHECK(blocks <= INT_MAX, "hyp: batch too large for one launch");
    const auto kernel = totals ? pair_metrics_short_kernel<tok_t, true> : pair_metrics_short_kernel<tok_t, false>;
    kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(batch, dist, totals);
  } else {
    // Warps loop over pairs, so launch only as many as can be resident at once: the
    // carry workspace then scales with the GPU, not with the batch.
    int sms = 0, blocks_per_sm = 0;
    STD_TORCH_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, hyp.get_device_index()) == cudaSuccess,
                    "could not query the GPU's multiprocessor count");
    const auto kernel = totals ? pair_metrics_long_kernel<tok_t, true> : pair_metrics_long_kernel<tok_t, false>;
    STD_TORCH_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel, kThreads, 0) == cudaSuccess,
                    "could not query the edit-distance kernel's occupancy");
    constexpr int kWarpsPerBlock = kThreads / 32;
    const int64_t blocks = std::min<int64_t>((B + kWarpsPerBlock - 1) / kWarpsPerBlock,
                                             int64_t{sms} * std::max(blocks_per_sm, 1));
    const int64_t words = (std::max(hyp.size(1), ref.size(1)) + 63) / 64;
    Tensor workspace = torch::stable::empty({blocks * kWarpsPerBlock * 2 * words}, ScalarType::Long, std::nullopt,
                                            hyp.device());
    auto* ws = static_cast<uint64_t*>(workspace.mutable_data_ptr());
    kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(batch, ws, words, dist, totals);
  }
  check_launch("edit distance");
}

}  // namespace crnn_fast
