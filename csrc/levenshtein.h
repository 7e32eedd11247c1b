// Bit-parallel Levenshtein distance (Myers 1999, in Hyyrö's formulation), shared by
// the CPU and CUDA kernels.
//
// The shorter sequence (the pattern, m tokens) is cut into blocks of 64 rows; each
// block sweeps the other sequence (the text) one column at a time, keeping the
// vertical deltas of its 64 rows as two bit vectors (pv: +1, mv: -1). The
// horizontal delta leaving a block's last row enters the next block from above;
// above the first block every horizontal delta is +1 (D[0][j] = j). The distance is
// m plus the horizontal deltas leaving the pattern's last row.
#pragma once

#include <cstdint>

#include <torch/headeronly/macros/Macros.h>

namespace crnn_fast {

// Advances one block by one text column. `eq` has bit r set where the block's row r
// equals the column's token. `hp`/`hn` (0 or 1) hold the horizontal delta entering
// from above on input and the one leaving at `last` (the block's bottom row) on
// output.
C10_HOST_DEVICE inline void myers_advance(uint64_t eq, uint64_t& pv, uint64_t& mv, uint64_t& hp, uint64_t& hn,
                                          uint64_t last) {
  const uint64_t xv = eq | mv;
  const uint64_t eq_h = eq | hn;
  const uint64_t xh = (((eq_h & pv) + pv) ^ pv) | eq_h;
  uint64_t ph = mv | ~(xh | pv);
  uint64_t mh = pv & xh;
  const uint64_t hp_out = (ph & last) != 0, hn_out = (mh & last) != 0;
  ph = (ph << 1) | hp;
  mh = (mh << 1) | hn;
  pv = mh | ~(xv | ph);
  mv = ph & xv;
  hp = hp_out;
  hn = hn_out;
}

// Bit of the bottom row of pattern block `block` (64 rows each) of an m-token pattern.
C10_HOST_DEVICE inline uint64_t block_last_row(int64_t block, int64_t m) {
  const int64_t rows = m - block * 64 < 64 ? m - block * 64 : 64;
  return uint64_t{1} << (rows - 1);
}

// Batch sums of sequence_metrics, in the order of its totals tensor.
enum Total { kExact, kExactFolded, kMatches, kEdits, kRefTokens, kNumTotals };

// Token after case folding: fold[token] where the map covers it, the token otherwise.
template <typename tok_t>
C10_HOST_DEVICE inline int64_t fold_token(tok_t token, const int64_t* fold, int64_t fold_size) {
  return token >= 0 && static_cast<int64_t>(token) < fold_size ? fold[token] : static_cast<int64_t>(token);
}

}  // namespace crnn_fast
