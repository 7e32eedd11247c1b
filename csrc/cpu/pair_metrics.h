// Per-pair Levenshtein distance and match counts on the CPU, shared by the
// edit_distance and sequence_metrics kernels.
#pragma once

#include <array>
#include <atomic>
#include <optional>
#include <vector>

#include "common.h"
#include "levenshtein.h"

namespace crnn_fast {

// A row of a padded (B, W) token tensor, cut to its length.
template <typename tok_t>
struct Row {
  const tok_t* data;
  int64_t stride;
  int64_t len;
  tok_t operator[](int64_t i) const { return data[i * stride]; }
};

// Scratch reused by one thread across many pairs: no allocation per pair once the
// longest text has been seen.
class LevenshteinWorkspace {
 public:
  template <typename tok_t>
  int64_t distance(Row<tok_t> a, Row<tok_t> b) {
    // A common prefix or suffix never changes the distance; equal rows end here.
    while (a.len > 0 && b.len > 0 && a[0] == b[0]) {
      a.data += a.stride, b.data += b.stride;
      --a.len, --b.len;
    }
    while (a.len > 0 && b.len > 0 && a[a.len - 1] == b[b.len - 1]) --a.len, --b.len;
    if (a.len > b.len) std::swap(a, b);  // the shorter row is the pattern
    const int64_t m = a.len, n = b.len;
    if (m == 0) return n;

    hp_.assign((n + 63) / 64, ~uint64_t{0});
    hn_.assign((n + 63) / 64, 0);
    int64_t dist = m;
    for (int64_t block = 0; block * 64 < m; ++block) {
      build_table(a, block);
      const uint64_t last = block_last_row(block, m);
      const bool bottom = (block + 1) * 64 >= m;
      uint64_t pv = ~uint64_t{0}, mv = 0;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t w = i >> 6;
        const uint64_t bit = uint64_t{1} << (i & 63);
        uint64_t hp = (hp_[w] & bit) != 0, hn = (hn_[w] & bit) != 0;
        myers_advance(lookup(b[i]), pv, mv, hp, hn, last);
        hp_[w] = hp ? hp_[w] | bit : hp_[w] & ~bit;
        hn_[w] = hn ? hn_[w] | bit : hn_[w] & ~bit;
        if (bottom) dist += static_cast<int64_t>(hp) - static_cast<int64_t>(hn);
      }
    }
    return dist;
  }

 private:
  static constexpr int kMaxSlots = 128;  // two slots per row of a 64-row block

  // Open-addressing map from token to the rows of the block that hold it.
  template <typename tok_t>
  void build_table(Row<tok_t> pattern, int64_t block) {
    const int64_t first = block * 64;
    const int64_t rows = std::min<int64_t>(64, pattern.len - first);
    slots_ = 8;
    while (slots_ < 2 * rows) slots_ *= 2;
    shift_ = 64 - __builtin_ctz(static_cast<unsigned>(slots_));
    std::fill(used_.begin(), used_.begin() + slots_, false);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t key = pattern[first + r];
      const int slot = find(key);
      if (!used_[slot]) {
        used_[slot] = true;
        keys_[slot] = key;
        masks_[slot] = 0;
      }
      masks_[slot] |= uint64_t{1} << r;
    }
  }

  int find(int64_t key) const {
    int slot = static_cast<int>((static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ull) >> shift_);
    while (used_[slot] && keys_[slot] != key) slot = (slot + 1) & (slots_ - 1);
    return slot;
  }

  uint64_t lookup(int64_t key) const {
    const int slot = find(key);
    return used_[slot] ? masks_[slot] : 0;
  }

  std::vector<uint64_t> hp_, hn_;
  std::array<int64_t, kMaxSlots> keys_{};
  std::array<uint64_t, kMaxSlots> masks_{};
  std::array<bool, kMaxSlots> used_{};
  int slots_ = 8;
  int shift_ = 61;
};

// Distances of all pairs, and with `totals` the fused metric sums: exact matches,
// exact matches after folding tokens through `fold`, position-wise matches, edits
// and reference tokens.
template <typename tok_t>
void pair_metrics_cpu(const Tensor& hyp, const int64_t* hyp_lengths, const Tensor& ref, const int64_t* ref_lengths,
                      const int64_t* fold, int64_t fold_size, int32_t* distances, int64_t* totals) {
  const int64_t B = hyp.size(0);
  const auto* hyp_data = static_cast<const tok_t*>(hyp.const_data_ptr());
  const auto* ref_data = static_cast<const tok_t*>(ref.const_data_ptr());
  const int64_t hyp_width = hyp.size(1), ref_width = ref.size(1);
  std::array<std::atomic<int64_t>, kNumTotals> sums{};

  torch::stable::parallel_for(0, B, 256, [&](int64_t begin, int64_t end) {
    LevenshteinWorkspace workspace;
    std::array<int64_t, kNumTotals> local{};
    for (int64_t b = begin; b < end; ++b) {
      const Row<tok_t> h{hyp_data + b * hyp.stride(0), hyp.stride(1), clamp_length(hyp_lengths[b], hyp_width)};
      const Row<tok_t> r{ref_data + b * ref.stride(0), ref.stride(1), clamp_length(ref_lengths[b], ref_width)};
      const int64_t dist = workspace.distance(h, r);
      distances[b] = static_cast<int32_t>(dist);
      if (!totals) continue;
      int64_t matches = 0;
      bool folded_equal = h.len == r.len;
      for (int64_t j = 0; j < std::min(h.len, r.len); ++j) {
        matches += h[j] == r[j];
        folded_equal = folded_equal && fold_token(h[j], fold, fold_size) == fold_token(r[j], fold, fold_size);
      }
      local[kExact] += dist == 0;
      local[kExactFolded] += folded_equal;
      local[kMatches] += matches;
      local[kEdits] += dist;
      local[kRefTokens] += r.len;
    }
    for (int k = 0; k < kNumTotals; ++k) sums[k] += local[k];
  });
  if (totals) {
    for (int k = 0; k < kNumTotals; ++k) totals[k] = sums[k];
  }
}

}  // namespace crnn_fast
