// CTC prefix beam search for one sequence, shared by the CPU kernel (a thread per
// sequence over torch's thread pool) and the CUDA kernel (a GPU thread per sequence):
// both run exactly this code, so they return the same beams.
//
// A beam entry is a prefix (labelling) with log-probabilities of its alignments that
// end in a blank (pb) and in a label (pnb); its score is logaddexp(pb, pnb). Per frame:
//  - "stay" candidates keep each prefix: a blank adds to pb, a repeat of the last
//    label adds to pnb (collapsed), and so does the parent prefix emitting that label;
//  - "extend" candidates append a label c: from pb only when c repeats the last label
//    (a repeat needs a blank in between), from pb + pnb otherwise.
// Identical prefixes are merged and the beam_width (K) best candidates survive, ties
// going to the earlier candidate (stays in beam order, then extensions by prefix and
// class rank). Instead of scoring K * C extensions per frame, the decoder takes the
// candidates best first and stops when the beam is full:
//  - a stay's score (a logaddexp of up to three terms) is worked out at once if the
//    stay beats every extension, else bounded by its largest term plus ln 3 and worked
//    out only if that bound comes first;
//  - only the classes that can beat the worst stay from the best prefix are gathered,
//    and they are ranked lazily, as deep as the search goes;
//  - the extensions by the class of rank r form a column, sorted because the beam is:
//    columns open in rank order once a bound on their best candidate comes first, and
//    the best of the open columns' heads and a small queue (stays, repeats of a
//    prefix's last label) is taken next.
// The result is the same as trying every class. Classes outside ctcdecode's
// cutoff_top_n / cutoff_prob set for the frame are not considered at all. A frame in
// which no extension can beat the worst stay (most frames of a trained model's
// outputs) keeps the stays, put in order (on a CPU).
//
// Prefixes are never copied: every frame records, per surviving entry, its source
// entry and the label it appended (or -1); the best prefixes are read back at the
// end. Each entry knows its parent's index in the beam, kept up to date frame by
// frame; prefixes are also identified by a 64-bit rolling hash, which finds a parent
// that comes back into the beam as a new extension. The timestep of a label is the
// frame of its most probable emission, as in ctcdecode.
//
// A frame holding NaN or +inf stops the sequence's decoding: its scores come out NaN.
//
// Streaming (run_chunk): between chunks a sequence's state is its beam (the entries
// as they are, so the next frame is decoded exactly as if no chunk ended) and a
// prefix tree: at the end of a chunk, the labels that the surviving entries appended
// in it become nodes (each extension once, however many entries descend from it), and
// each entry points at the node of its last label. The tree only grows, in place, so
// a chunk costs its frames, not the frames before it; compact() drops the nodes no
// entry reaches, and read_paths() reads prefixes back. Timesteps count from the
// stream's first frame.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include <torch/headeronly/macros/Macros.h>

// On x86 CPUs with AVX2 (checked at run time), the decoder gathers, narrows and ranks
// a frame's classes, and counts their cutoff ranks, eight at a time. The CPU and CUDA
// builds of this header differ, so each lives in its own inline namespace.
#if !defined(__CUDACC__) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRNN_FAST_BEAM_AVX2 1
#include <immintrin.h>
#endif

namespace crnn_fast {
namespace beam {
#ifdef __CUDACC__
inline namespace cuda_build {
#else
inline namespace cpu_build {
#endif

constexpr uint64_t kEmptyHash = 0x9E3779B97F4A7C15ull;
constexpr int64_t kMaxBeamWidth = 4096;
constexpr int64_t kMaxWorkspaceBytes = int64_t{1} << 30;  // per sequence
constexpr int64_t kMaxFrames = 2147483647;  // a stream's frames, as int32 timesteps count them
constexpr uint64_t kNone = ~uint64_t{0};  // ranks after every candidate

C10_HOST_DEVICE inline uint64_t extend_hash(uint64_t h, int32_t label) {
  uint64_t z = h + 0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(label) + 2);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Whether, in step, a source goes on giving candidates while it stays ahead of the
// others (the same picks either way): always on a CPU; on a GPU, where the threads of
// a warp then sit in different inner loops, for beams up to 32 (on an H200, 100k
// sequences: beam 10 and 32 took 14% and 9% less time with it, beam 100 15% more).
C10_HOST_DEVICE inline bool drains(int64_t beam_width) {
#ifdef __CUDA_ARCH__
  return beam_width <= 32;
#else
  (void)beam_width;
  return true;
#endif
}

// Whether, in step, a frame where no extension can come before any stay puts the
// stays in order by insertion sort, without the candidate queue: on a CPU, for beams
// up to 64 (on a trained model's outputs most frames are such frames at beam 10; at
// beams 64 to 128 it measured neither faster nor slower, and the sort is quadratic in
// the worst case). Not on a GPU: the threads of a warp, each on its own sequence,
// would rarely all be in such a frame at once, so the warp would run both ways.
C10_HOST_DEVICE inline bool sorts_stays(int64_t beam_width) {
#ifdef __CUDA_ARCH__
  (void)beam_width;
  return false;
#else
  return beam_width <= 64;
#endif
}

C10_HOST_DEVICE inline float log_add(float a, float b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  const float hi = a > b ? a : b, lo = a > b ? b : a, d = lo - hi;
  if (d < -12.0f) {
    // The sum rounds to hi when log1p(e^d) is under half the gap between hi and its
    // neighbouring floats: then expf and log1pf are skipped. With hi's exponent field
    // e (a normal number), either gap is at least 2^(e - 151), so e^d < 2^(e - 153) is
    // enough, with room for the rounding of expf and log1pf: d < e ln 2 - 106.05.
    // Below e^-104 (zero and subnormal hi) expf rounds to 0 anyway, through glibc's
    // slow underflow path.
    uint32_t bits;
    memcpy(&bits, &hi, sizeof(bits));
    if (d < -104.0f || d < static_cast<float>((bits >> 23) & 0xFFu) * 0.69314718f - 106.06f) return hi;
  }
  return hi + log1pf(expf(d));
}

// A float's bits as an unsigned key that orders the other way round: larger values
// get smaller keys (-0 is taken as +0; a frame holding NaN ends the decoding first).
C10_HOST_DEVICE inline uint32_t descending_key(float v) {
  uint32_t u;
  memcpy(&u, &v, sizeof(u));
  u = u == 0x80000000u ? 0u : u;  // -0 as +0
  return (u & 0x80000000u) ? u : ~u & 0x7FFFFFFFu;
}

C10_HOST_DEVICE inline float from_descending_key(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? k : ~k & 0x7FFFFFFFu;
  float v;
  memcpy(&v, &u, sizeof(v));
  return v;
}

// (value descending, then index ascending) as one integer: smaller ranks first.
C10_HOST_DEVICE inline uint64_t rank_key(float value, uint32_t index) {
  return (static_cast<uint64_t>(descending_key(value)) << 32) | index;
}

struct Entry {
  uint64_t hash, parent_hash;
  float pb, pnb, score;
  float last_lp;  // log-prob of the best emission so far of the prefix's last label
  int32_t last, len, last_t;
  int32_t src, label;  // where the entry came from this frame (label -1: kept the prefix)
  int32_t parent;      // the beam index of the prefix without its last label, or -1
  int32_t node;        // streaming: the tree node of the last label (-1: the empty prefix)
};
// The state tensors hold entries as int64 words.
static_assert(sizeof(Entry) % 8 == 0 && alignof(Entry) <= 8, "Entry must fill whole int64 words");
constexpr int64_t kEntryWords = sizeof(Entry) / 8;

// A node of a stream's prefix tree: a label appended to the prefix of its parent node.
// A label's timestep is settled once a label follows it, so each node keeps its
// parent's (the last label's is its entry's last_t).
struct Node {
  int32_t label;
  int32_t parent;  // -1: the empty prefix; always an earlier node
  int32_t parent_t;
};
static_assert(sizeof(Node) == 12, "the state tensors hold nodes as three int32");

// One sequence's prefix tree, appended to in place: nodes[0, *used) of `capacity`.
struct Tree {
  Node* nodes;
  int64_t* used;
  int64_t capacity;
  C10_HOST_DEVICE Tree at(int64_t b) const { return {nodes + b * capacity, used + b, capacity}; }
};

// One sequence's beam in the state tensors: K entries, best first, and progress =
// {frames decoded, entries in the beam}. at(b, K) is row b of a batch.
template <typename E, typename P>
struct BeamRows {
  E* beams;
  P* progress;
  C10_HOST_DEVICE BeamRows at(int64_t b, int64_t K) const { return {beams + b * K, progress + 2 * b}; }
};
using StreamIn = BeamRows<const Entry, const int64_t>;
// The beam a chunk leaves, with each entry's prefix length and score beside it.
struct StreamOut : BeamRows<Entry, int64_t> {
  int32_t* lengths;
  float* scores;
  C10_HOST_DEVICE StreamOut at(int64_t b, int64_t K) const {
    return {BeamRows::at(b, K), lengths + b * K, scores + b * K};
  }
};

// Writes the labels and timesteps of the first `top_paths` of `size` entries into rows
// of `width` (padded with -1) by walking their nodes. A node out of the tree, or a
// parent that is not earlier, ends the walk: a tree not written by run_chunk can give
// wrong labels, never a read out of bounds or a loop without end.
C10_HOST_DEVICE inline void read_paths(const Entry* beams, int64_t size, const Tree& tree, int64_t top_paths,
                                       int64_t width, int32_t* tokens, int32_t* timesteps) {
  const int64_t used = *tree.used < tree.capacity ? *tree.used : tree.capacity;
  for (int64_t k = 0; k < top_paths; ++k) {
    int32_t* row = tokens + k * width;
    int32_t* times = timesteps + k * width;
    for (int64_t i = 0; i < width; ++i) row[i] = times[i] = -1;
    if (k >= size) continue;
    int64_t pos = (beams[k].len < width ? beams[k].len : width) - 1;
    int32_t n = beams[k].node, t = beams[k].last_t;
    for (; pos >= 0 && n >= 0 && n < used; --pos) {
      const Node& node = tree.nodes[n];
      row[pos] = node.label;
      times[pos] = t;
      t = node.parent_t;
      if (node.parent >= n) break;
      n = node.parent;
    }
  }
}

// Copies the nodes that the `size` entries reach into `to` (in their order, so parents
// stay earlier; the rest of `to` zeroed) and the entries into `out`, pointing at the
// new nodes. remap: scratch of from.capacity ints.
C10_HOST_DEVICE inline void compact(const Entry* beams, int64_t size, int64_t K, const Tree& from, Entry* out,
                                    const Tree& to, int32_t* remap) {
  const int64_t used = *from.used < from.capacity ? (*from.used > 0 ? *from.used : 0) : from.capacity;
  constexpr int32_t kDead = -1, kLive = -2;
  for (int64_t i = 0; i < used; ++i) remap[i] = kDead;
  for (int64_t k = 0; k < size; ++k) {
    for (int32_t n = beams[k].node; n >= 0 && n < used && remap[n] == kDead;) {
      remap[n] = kLive;
      const int32_t parent = from.nodes[n].parent;
      n = parent < n ? parent : -1;
    }
  }
  int32_t count = 0;
  for (int64_t i = 0; i < used && count < to.capacity; ++i) {
    if (remap[i] != kLive) continue;
    const Node& node = from.nodes[i];
    to.nodes[count] = {node.label, node.parent >= 0 && node.parent < i ? remap[node.parent] : -1, node.parent_t};
    remap[i] = count++;
  }
  *to.used = count;
  for (int64_t i = count; i < to.capacity; ++i) to.nodes[i] = {0, 0, 0};
  for (int64_t k = 0; k < K; ++k) {
    out[k] = beams[k];
    const int32_t n = beams[k].node;
    if (k < size) out[k].node = n >= 0 && n < used && remap[n] >= 0 ? remap[n] : -1;
  }
}

// What keeping prefix k through a frame gives: pb, pnb, the parent's emission of the
// last label (feed), the score (or a bound on it), the last label's best emission.
struct Stay {
  float pb, pnb, feed, score, last_lp;
  int32_t last_t;
  // The score itself, in place of the bound: the parent's emission joins pnb.
  C10_HOST_DEVICE void work_out() {
    pnb = log_add(pnb, feed);
    score = log_add(pb, pnb);
  }
};

// Sizes of one sequence's scratch, carved out of a caller-provided buffer.
struct Layout {
  int64_t K, T, C, sorted, slots;
  int32_t rank_bits;  // a class rank fits in this many bits
  C10_HOST_DEVICE Layout(int64_t beam_width, int64_t frames, int64_t classes)
      : K(beam_width), T(frames), C(classes), sorted(2 * beam_width + 1 < classes ? 2 * beam_width + 1 : classes),
        slots(8), rank_bits(0) {
    while (slots < 2 * K) slots *= 2;
    while ((int64_t{1} << rank_bits) < sorted) ++rank_bits;
  }
  C10_HOST_DEVICE int64_t bytes() const;  // rounded to 16, so that consecutive buffers stay aligned
};

// Hands out consecutive arrays of a buffer, each aligned for its type; with no buffer,
// it only counts the bytes.
class Carver {
 public:
  C10_HOST_DEVICE explicit Carver(unsigned char* base) : base_(base) {}
  template <typename T>
  C10_HOST_DEVICE T* take(int64_t n) {
    used_ = (used_ + static_cast<int64_t>(alignof(T)) - 1) / static_cast<int64_t>(alignof(T)) *
            static_cast<int64_t>(alignof(T));
    T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ += n * static_cast<int64_t>(sizeof(T));
    return p;
  }
  C10_HOST_DEVICE int64_t bytes() const { return (used_ + 15) / 16 * 16; }

 private:
  unsigned char* base_;
  int64_t used_ = 0;
};

struct Params {
  int64_t beam_width, top_paths, blank, cutoff_top_n;
  float blank_penalty, cutoff_prob;
  bool prune;  // cutoff_top_n < C or cutoff_prob < 1
};

#ifdef CRNN_FAST_BEAM_AVX2
// Whether to use AVX2: the CPU has it and ATEN_CPU_CAPABILITY, which sets the
// instructions torch's own kernels use, does not say "default".
inline bool use_avx2() {
  static const bool yes = [] {
    const char* capability = std::getenv("ATEN_CPU_CAPABILITY");
    return __builtin_cpu_supports("avx2") && !(capability && std::strcmp(capability, "default") == 0);
  }();
  return yes;
}

// Per 8-bit mask, the positions of its set bits in order, as 4-bit fields.
struct CompressTable {
  uint32_t positions[256];
  constexpr CompressTable() : positions() {
    for (int mask = 0; mask < 256; ++mask) {
      for (int i = 0, n = 0; i < 8; ++i) {
        if (mask & (1 << i)) positions[mask] |= static_cast<uint32_t>(i) << (4 * n++);
      }
    }
  }
};
inline constexpr CompressTable kCompress{};

// Stores, at lp_out[n] and class_out[n] on, the lanes of lp and classes above floor,
// in order (writing 8 lanes each), and returns n plus their number.
__attribute__((target("avx2,popcnt"))) inline int64_t compress_above(__m256 lp, __m256i classes, __m256 floor,
                                                                   float* lp_out, int32_t* class_out, int64_t n) {
  const int mask = _mm256_movemask_ps(_mm256_cmp_ps(lp, floor, _CMP_GT_OQ));
  const __m256i order = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(kCompress.positions[mask])),
                                                           _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                         _mm256_set1_epi32(0xF));
  _mm256_storeu_ps(lp_out + n, _mm256_permutevar8x32_ps(lp, order));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(class_out + n), _mm256_permutevar8x32_epi32(classes, order));
  return n + __builtin_popcount(static_cast<unsigned>(mask));
}

// gather_classes' loop over a contiguous float frame's whole blocks of 8 classes:
// compacts those above floor (each store writes 8 lanes, within the frame's C) and
// returns the classes it went through (the caller's loop does the rest); sets bad if
// they hold NaN or +inf.
__attribute__((target("avx2,popcnt"))) inline int64_t gather_blocks_avx2(const float* frame, int64_t C, float floor,
                                                                       float* lp_out, int32_t* class_out, int64_t& n,
                                                                       bool& bad) {
  const __m256 above = _mm256_set1_ps(floor), inf = _mm256_set1_ps(INFINITY);
  __m256i classes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256 not_finite = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) {
    const __m256 v = _mm256_loadu_ps(frame + c);
    not_finite = _mm256_or_ps(not_finite, _mm256_cmp_ps(v, inf, _CMP_NLT_UQ));
    n = compress_above(v, classes, above, lp_out, class_out, n);
    classes = _mm256_add_epi32(classes, _mm256_set1_epi32(8));
  }
  bad = _mm256_movemask_ps(not_finite) != 0;
  return c;
}

// keep_classes_above's loop over whole blocks of 8 of lp[0..n) and their classes, in
// place (the stores stay within lanes already loaded): returns the entries it went
// through, having kept (counted in kept) those above floor.
__attribute__((target("avx2,popcnt"))) inline int64_t keep_blocks_avx2(float* lp, int32_t* classes, int64_t n,
                                                                     float floor, int64_t& kept) {
  const __m256 above = _mm256_set1_ps(floor);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    kept = compress_above(_mm256_loadu_ps(lp + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(classes + i)),
                          above, lp, classes, kept);
  }
  return i;
}

// The rank of (v, c) among lp[0..n) and their classes: the entries more than v, and
// those equal to v with a smaller class (reads up to 8 entries past n, not counted).
__attribute__((target("avx2"))) inline int32_t rank_avx2(const float* lp, const int32_t* classes, int64_t n, float v,
                                                       int32_t c) {
  const __m256 value = _mm256_set1_ps(v);
  const __m256i cls = _mm256_set1_epi32(c), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i count = _mm256_setzero_si256();
  for (int64_t i = 0; i < n; i += 8) {
    const __m256 x = _mm256_loadu_ps(lp + i);
    const __m256i k = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(classes + i));
    const __m256 tie = _mm256_and_ps(_mm256_cmp_ps(x, value, _CMP_EQ_OQ), _mm256_castsi256_ps(_mm256_cmpgt_epi32(cls, k)));
    const __m256 before = _mm256_or_ps(_mm256_cmp_ps(x, value, _CMP_GT_OQ), tie);
    const __m256i in = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)), lane);
    count = _mm256_sub_epi32(count, _mm256_and_si256(_mm256_castps_si256(before), in));
  }
  __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(count), _mm256_extracti128_si256(count, 1));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
  return _mm_cvtsi128_si32(sum);
}

// The index of the first largest of a[0..n), n >= 1, with a[n..n+8) at -inf.
__attribute__((target("avx2"))) inline int64_t argmax_avx2(const float* a, int64_t n) {
  __m256 m = _mm256_loadu_ps(a);
  for (int64_t j = 8; j < n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(a + j));
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
  const __m256 best = _mm256_broadcastss_ps(x);
  for (int64_t j = 0;; j += 8) {
    const int equal = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(a + j), best, _CMP_EQ_OQ));
    if (equal) return j + __builtin_ctz(static_cast<unsigned>(equal));
  }
}
#endif

template <typename scalar_t>
class Decoder {
 public:
  // A null buffer only sizes the scratch (Layout::bytes).
  C10_HOST_DEVICE Decoder(const Layout& layout, unsigned char* buffer) : L(layout) {
#ifdef CRNN_FAST_BEAM_AVX2
    avx2_ = use_avx2();
#endif
    Carver carve(buffer);
    beam_ = carve.take<Entry>(L.K);
    next_ = carve.take<Entry>(L.K);
    stays_ = carve.take<Stay>(L.K);
    children_ = carve.take<uint64_t>(L.K);
    gathered_lp_ = carve.take<float>(L.C + 8);  // with -inf padding for argmax_avx2
    gathered_class_ = carve.take<int32_t>(L.C + 8);  // rank_avx2 reads 8 past the end
    ranked_lp_ = carve.take<float>(L.C);
    ranked_class_ = carve.take<int32_t>(L.C);
    cutoff_key_ = carve.take<uint64_t>(L.C);
    queue_ = carve.take<uint64_t>(2 * L.K + 4);  // stays, repeats, and replace_top's padding
    column_key_ = carve.take<uint64_t>(L.sorted);
    slot_key_ = carve.take<uint64_t>(L.slots);
    column_row_ = carve.take<int32_t>(L.sorted);
    column_rank_ = carve.take<int32_t>(L.sorted);
    column_class_ = carve.take<int32_t>(L.sorted);
    column_lp_ = carve.take<float>(L.sorted);
    column_score_ = carve.take<float>(L.sorted);
    stay_at_ = carve.take<int32_t>(L.K);
    first_child_ = carve.take<int32_t>(L.K);
    next_sibling_ = carve.take<int32_t>(L.K);
    slot_val_ = carve.take<int32_t>(L.slots);
    hist_src_ = carve.take<int32_t>(L.T * L.K);
    hist_label_ = carve.take<int32_t>(L.T * L.K);
    hist_last_t_ = carve.take<int32_t>(L.T * L.K);
    scored_ = carve.take<bool>(L.K);
    bytes_ = carve.bytes();
  }

  C10_HOST_DEVICE int64_t bytes() const { return bytes_; }

  // Decodes the next `len` frames of a sequence from its beam `in` (a new sequence if
  // it has decoded no frame yet), adds the labels its entries appended to its `tree`,
  // and writes the beam after them to `out`. Frames as in run; a frame with NaN or
  // +inf, a beam that this decoder cannot have written (an entry out of range), or a
  // tree without room for K * len more nodes, leave no entries and NaN scores.
  C10_HOST_DEVICE void run_chunk(const scalar_t* log_probs, int64_t sT, int64_t sC, int64_t len, const Params& p,
                                 const StreamIn& in, const Tree& tree, const StreamOut& out) {
    t0_ = in.progress[0];
    bad_ = t0_ < 0 || t0_ > kMaxFrames - len || *tree.used < 0 || *tree.used > tree.capacity - L.K * len;
    if (!bad_ && t0_ == 0) {
      start();
    } else if (!bad_) {
      bad_ = !load(in, *tree.used);
    }
    for (int64_t t = 0; t < len && !bad_; ++t) step(log_probs + t * sT, sC, t, p);
    if (bad_) size_ = 0;
    grow_tree(len, in, tree);
    for (int64_t k = 0; k < L.K; ++k) {
      const bool kept = k < size_;
      out.beams[k] = kept ? beam_[k] : Entry{};
      out.lengths[k] = kept ? beam_[k].len : 0;
      out.scores[k] = bad_ ? NAN : (kept ? beam_[k].score : -INFINITY);
    }
    out.progress[0] = bad_ ? t0_ : t0_ + len;  // (t0_ may be any value when bad_)
    out.progress[1] = size_;
  }

  // Decodes `len` frames of (C,) log-prob rows (`frame(t)[c * sC]`) and writes the
  // top_paths best prefixes: tokens/timesteps rows of width T padded with -1. A frame
  // with NaN or +inf ends the decoding: no prefixes, NaN scores.
  C10_HOST_DEVICE void run(const scalar_t* log_probs, int64_t sT, int64_t sC, int64_t len, const Params& p,
                           int32_t* tokens, int32_t* out_lengths, float* scores, int32_t* timesteps) {
    t0_ = 0;
    bad_ = false;
    start();
    for (int64_t t = 0; t < len && !bad_; ++t) step(log_probs + t * sT, sC, t, p);
    if (bad_) size_ = 0;
    write_paths(len, p.top_paths, tokens, out_lengths, scores, timesteps);
    if (bad_) {
      for (int64_t k = 0; k < p.top_paths; ++k) scores[k] = NAN;
    }
  }

 private:
  // The beam before the first frame: the empty prefix.
  C10_HOST_DEVICE void start() {
    size_ = 1;
    beam_[0] = Entry{kEmptyHash, 0, 0.0f, -INFINITY, 0.0f, -INFINITY, -1, 0, -1, -1, -1, -1, -1};
  }

  // Takes the beam of a state; false if an entry could not have come from a decoder
  // of this width and class count with a tree of `nodes` (what step indexes with them
  // is checked).
  C10_HOST_DEVICE bool load(const StreamIn& in, int64_t nodes) {
    const int64_t n = in.progress[1];
    if (n < 0 || n > L.K) return false;
    size_ = static_cast<int32_t>(n);
    for (int32_t k = 0; k < size_; ++k) {
      const Entry& e = in.beams[k];
      if (e.len < 0 || e.len > t0_ || (e.len > 0 && (e.last < 0 || e.last >= L.C || e.node < 0)) || e.node < -1 ||
          e.node >= nodes || e.parent < -1 || e.parent >= size_) {
        return false;
      }
      beam_[k] = e;
    }
    return true;
  }

  C10_HOST_DEVICE void step(const scalar_t* frame, int64_t sC, int64_t t, const Params& p) {
    if (p.prune) {  // the cutoff ranks classes before the stays need it
      gather_classes(frame, sC, -INFINITY);
      if (bad_) return;
      find_cutoff(p);
    }
    for (int32_t k = 0; k < size_; ++k) {
      children_[k] = 0;
      first_child_[k] = -1;
      stay_at_[k] = -1;
    }
    queue_size_ = 0;
    const float blank_lp = in_cutoff(frame, sC, p.blank, p)
                               ? static_cast<float>(frame[p.blank * sC]) - p.blank_penalty
                               : -INFINITY;

    // Stays: every prefix kept, fed by blanks (pb), repeats (pnb) and its parent's
    // emission (feed). The score, logaddexp of the three, is at least their maximum
    // (kept in score for now) and at most that plus ln 3.
    float worst = INFINITY;  // at most the worst stay's score
    for (int32_t k = 0; k < size_; ++k) {
      const Entry& e = beam_[k];
      Stay& s = stays_[k];
      s.pb = e.score + blank_lp;
      s.pnb = s.feed = -INFINITY;
      s.last_lp = e.last_lp;
      s.last_t = e.last_t;
      if (e.len > 0) {
        const float lp = label_lp(frame, sC, e.last, p);
        s.pnb = e.pnb + lp;
        const int32_t parent = e.parent;
        if (parent >= 0) {
          children_[parent] |= uint64_t{1} << (e.last & 63);
          next_sibling_[k] = first_child_[parent];
          first_child_[parent] = k;
        }
        if (parent >= 0 && lp > -INFINITY) {
          const Entry& q = beam_[parent];
          s.feed = (q.last == e.last ? q.pb : q.score) + lp;
          if (lp > s.last_lp) {
            s.last_lp = lp;
            s.last_t = static_cast<int32_t>(t0_ + t);
          }
        }
      }
      float low = s.pb > s.pnb ? s.pb : s.pnb;
      low = s.feed > low ? s.feed : low;
      s.score = low;  // for now
      worst = low < worst ? low : worst;
    }

    // With the beam full of stays, a class whose log-prob added to the best prefix's
    // score cannot beat the worst stay never enters: rank only the classes above that
    // floor (a prefix of the frame's ranking), lowered by a rounding margin. Under a
    // cutoff, which needed them all, the gathered classes are narrowed to the floor
    // (unless the probability rule ranked them already).
    float floor = -INFINITY;
    if (size_ == L.K) {
      const float best = beam_[0].score;
      floor = (worst - best) - 1e-5f * (1.0f + fabsf(worst) + fabsf(best));
    }
    if (!p.prune) {
      gather_classes(frame, sC, floor);
      if (bad_) return;
    } else if (n_ranked_ == 0) {
      keep_classes_above(floor);
    }

    // With the beam full of stays and no extension able to beat the worst of them, the
    // stays are the next beam; otherwise the candidates are taken best first.
    const float extension_bound = size_ > 0 ? beam_[0].score + best_label_lp(p) : -INFINITY;
    const int32_t n = sorts_stays(L.K) && size_ == L.K && extension_bound < worst ? take_stays()
                                                                                  : take_candidates(p, t, extension_bound);
    // Parents in the new beam: an extension's is its source prefix, if that stayed; a
    // stay's is its old parent, if that stayed, and if it had none, possibly one of the
    // new extensions (found by prefix hash, indexed at the first such stay).
    bool indexed = false;
    for (int32_t i = 0; i < n; ++i) {
      Entry& x = next_[i];
      if (x.label >= 0) {
        x.parent = stay_at_[x.src];
      } else if (x.parent >= 0) {
        x.parent = stay_at_[x.parent];
      } else if (x.len > 0) {
        if (!indexed) index_extensions(n);
        indexed = true;
        x.parent = find_extension(x.parent_hash);
      }
      hist_src_[t * L.K + i] = x.src;
      hist_label_[t * L.K + i] = x.label;
      hist_last_t_[t * L.K + i] = x.last_t;
    }
    Entry* old = beam_;
    beam_ = next_;
    next_ = old;
    size_ = n;
  }

  // The next beam's entries (returns how many), best first from the stays, the repeats
  // and the columns of extensions. extension_bound: at least every extension's score.
  C10_HOST_DEVICE int32_t take_candidates(const Params& p, int64_t t, float extension_bound) {
    // A stay that beats every extension is scored now; the others are queued with a
    // bound (their largest term plus ln 3 or more) and scored if that comes first.
    for (int32_t k = 0; k < size_; ++k) {
      Stay& s = stays_[k];
      const float low = s.score;
      if (low == -INFINITY) continue;  // no alignment left
      scored_[k] = !(low < extension_bound);
      if (scored_[k]) {
        s.work_out();
      } else {
        s.score = low + 1.1f + 1e-5f * fabsf(low);  // ln 3 < 1.1, with room for rounding
      }
      enqueue(rank_key(s.score, static_cast<uint32_t>(k)), s.score);
    }

    // Extensions, by class rank: column r lists the candidates (k, r), prefix k plus
    // the class of rank r, for k = 0, 1, ... in decreasing score (the prefixes are in
    // order), without those that are not candidates (the blank, classes outside the
    // cutoff, children already in the beam) and without the repeats of k's last label,
    // which go to the queue (their score comes from pb). Columns open in rank order once
    // a bound on their best candidate comes first. The candidates are taken best first
    // from the queue (stays, repeats) and the open columns' heads until the beam is full.
    n_open_ = 0;
    next_column_ = 0;
    next_bound_ = column_bound(0);
    const bool drain = drains(L.K);
    int32_t n = 0;
    while (n < L.K) {
      uint64_t best = queue_size_ > 0 ? queue_[0] : kNone, second = kNone;  // the best head, the next
      int32_t from = -1;  // the queue, else a column
      for (int32_t j = 0; j < n_open_; ++j) {
        const bool less = column_key_[j] < best;
        second = less ? best : (column_key_[j] < second ? column_key_[j] : second);
        best = less ? column_key_[j] : best;
        from = less ? j : from;
      }
      if (next_bound_ < best) {
        open_column(p);
        continue;
      }
      if (best == kNone) break;
      // The source whose head comes first goes on giving candidates while its head
      // comes before every other source's and the unopened columns' bound: the picks
      // the loop would make, without looking at the other sources each time. (Taking
      // from a column can queue repeats, so the queue's top is looked at again.)
      second = next_bound_ < second ? next_bound_ : second;
      if (from < 0) {
        do {
          take_from_queue(n, t);
        } while (drain && n < L.K && queue_size_ > 0 && queue_[0] < second);
        continue;
      }
      do {
        extension(next_[n++], column_row_[from], column_class_[from], column_lp_[from], column_score_[from], t);
        move_column(from);
        second = queue_size_ > 0 && queue_[0] < second ? queue_[0] : second;
      } while (drain && n < L.K && column_key_[from] < second);
    }
    return n;
  }

  // The next beam when no extension can come before any stay (all K finite): the
  // stays scored and in order. They mostly keep the beam's order, so their rank keys
  // are put in order by insertion sort, in the queue's storage.
  C10_HOST_DEVICE int32_t take_stays() {
    for (int32_t k = 0; k < size_; ++k) {
      stays_[k].work_out();
      const uint64_t key = rank_key(stays_[k].score, static_cast<uint32_t>(k));
      int32_t i = k;
      for (; i > 0 && queue_[i - 1] > key; --i) queue_[i] = queue_[i - 1];
      queue_[i] = key;
    }
    for (int32_t i = 0; i < size_; ++i) {
      const int32_t k = static_cast<int32_t>(queue_[i] & 0xFFFFFFFFu);
      stay_at_[k] = i;
      stay(next_[i], k);
    }
    return size_;
  }

  // The queue's top: a stay's bound is replaced by its score; a stay or a repeat is
  // taken into the next beam (entry n).
  C10_HOST_DEVICE void take_from_queue(int32_t& n, int64_t t) {
    const uint32_t seq = static_cast<uint32_t>(queue_[0] & 0xFFFFFFFFu);
    if (seq < static_cast<uint32_t>(L.K) && !scored_[seq]) {
      scored_[seq] = true;
      stays_[seq].work_out();
      replace_top(rank_key(stays_[seq].score, seq));
      return;
    }
    dequeue();
    if (seq < static_cast<uint32_t>(L.K)) {
      stay_at_[seq] = n;
      stay(next_[n++], seq);
    } else {
      const int32_t k = static_cast<int32_t>((seq - L.K) >> L.rank_bits);
      extend(next_[n++], k, (seq - L.K) & ((uint32_t{1} << L.rank_bits) - 1), t);
    }
  }

  // Gathers the frame's classes above `floor` (log-prob and class, in class order),
  // without branching; they are ranked lazily, as the search asks for them
  // (rank_next), and only the best `sorted` are used. Sets bad_ if the frame holds NaN
  // or +inf.
  C10_HOST_DEVICE void gather_classes(const scalar_t* frame, int64_t sC, float floor) {
    int64_t n = 0, c = 0;
    bool bad = false;
#ifdef CRNN_FAST_BEAM_AVX2
    if (std::is_same<scalar_t, float>::value && sC == 1 && avx2_) {
      c = gather_blocks_avx2(reinterpret_cast<const float*>(frame), L.C, floor, gathered_lp_, gathered_class_, n, bad);
    }
#endif
    for (; c < L.C; ++c) {
      const float lp = static_cast<float>(frame[c * sC]);
      bad |= !(lp < INFINITY);
      gathered_lp_[n] = lp;
      gathered_class_[n] = static_cast<int32_t>(c);
      n += lp > floor;
    }
    bad_ = bad;
    set_gathered(n);
    n_ranked_ = 0;
    n_classes_ = n < L.sorted ? n : L.sorted;
  }

  C10_HOST_DEVICE void set_gathered(int64_t n) {
    n_gathered_ = n;
#ifdef CRNN_FAST_BEAM_AVX2
    if (avx2_) {
      for (int64_t i = n; i < n + 8; ++i) gathered_lp_[i] = -INFINITY;
    }
#endif
  }

  // Keeps, of the gathered classes, those above `floor`, in class order.
  C10_HOST_DEVICE void keep_classes_above(float floor) {
    int64_t n = 0, i = 0;
#ifdef CRNN_FAST_BEAM_AVX2
    if (avx2_) i = keep_blocks_avx2(gathered_lp_, gathered_class_, n_gathered_, floor, n);
#endif
    for (; i < n_gathered_; ++i) {
      const float lp = gathered_lp_[i];
      gathered_lp_[n] = lp;
      gathered_class_[n] = gathered_class_[i];
      n += lp > floor;
    }
    set_gathered(n);
    if (n_classes_ > n) n_classes_ = n;
  }

  // Ranks the next class: the most probable gathered class not ranked yet, the first
  // in class order among equals (ranked ones are marked -inf, which no gathered class
  // is: the floor is at least -inf and the comparison strict).
  C10_HOST_DEVICE void rank_next() {
    int64_t at = 0;
#ifdef CRNN_FAST_BEAM_AVX2
    if (avx2_) {
      at = argmax_avx2(gathered_lp_, n_gathered_);
    } else
#endif
    {
      float best = -INFINITY;
      for (int64_t j = 0; j < n_gathered_; ++j) {
        const bool more = gathered_lp_[j] > best;
        best = more ? gathered_lp_[j] : best;
        at = more ? j : at;
      }
    }
    ranked_lp_[n_ranked_] = gathered_lp_[at];
    ranked_class_[n_ranked_++] = gathered_class_[at];
    gathered_lp_[at] = -INFINITY;
  }

  C10_HOST_DEVICE int32_t sorted_class(int64_t r) const { return ranked_class_[r]; }
  C10_HOST_DEVICE float sorted_lp(int64_t r) const { return ranked_lp_[r]; }

  // ctcdecode's pruning: the classes of rank r < cutoff_top_n whose more probable
  // classes sum to less than cutoff_prob, a prefix of the ranking (cutoff_prob 1
  // applies no probability rule: rounding can make a frame's probabilities sum past 1).
  // Only extensions by those ranks are tried; under the probability rule, in_cutoff
  // compares a class's rank key with the last one's.
  C10_HOST_DEVICE void find_cutoff(const Params& p) {
    const int64_t n = n_gathered_;
    const int64_t top = p.cutoff_top_n < n ? p.cutoff_top_n : n;
    cutoff_len_ = top;
    if (p.cutoff_prob < 1.0f) {
      for (int64_t i = 0; i < n; ++i) {
        cutoff_key_[i] = rank_key(gathered_lp_[i], static_cast<uint32_t>(gathered_class_[i]));
      }
      // Rank by selection until the mass is reached; the search needs no rank past it.
      double before = 0.0;
      for (int64_t r = 0; r < top; ++r) {
        select_min(cutoff_key_ + r, n - r);
        ranked_lp_[r] = from_descending_key(static_cast<uint32_t>(cutoff_key_[r] >> 32));
        ranked_class_[r] = static_cast<int32_t>(cutoff_key_[r] & 0xFFFFFFFFu);
        n_ranked_ = r + 1;
        if (!(before < p.cutoff_prob)) {
          cutoff_len_ = r;
          break;
        }
        before += exp(static_cast<double>(ranked_lp_[r]));
      }
    }
    if (n_classes_ > cutoff_len_) n_classes_ = cutoff_len_;
  }

  // Moves the smallest of a[0..n) to a[0].
  C10_HOST_DEVICE static void select_min(uint64_t* a, int64_t n) {
    int64_t at = 0;
    uint64_t best = a[0];
    for (int64_t j = 1; j < n; ++j) {
      const bool less = a[j] < best;
      best = less ? a[j] : best;
      at = less ? j : at;
    }
    a[at] = a[0];
    a[0] = best;
  }

  // Whether class c passes the frame's cutoff: under the probability rule against the
  // last class in it, else by its rank among the gathered classes (all but those at
  // -inf, which contribute -inf whether they pass or not): the classes more probable,
  // and those as probable and earlier: counted 8 at a time with AVX2; otherwise,
  // counting the classes at least as probable (c among them) settles most calls in one
  // pass that compilers vectorise, before the exact count. Needs all the
  // gathered classes: called before step narrows them to the floor and rank_next marks
  // the ranked ones.
  C10_HOST_DEVICE bool in_cutoff(const scalar_t* frame, int64_t sC, int64_t c, const Params& p) const {
    if (!p.prune) return true;
    const float lp = static_cast<float>(frame[c * sC]);
    const int32_t cls = static_cast<int32_t>(c);
    if (p.cutoff_prob < 1.0f) {
      return cutoff_len_ > 0 && rank_key(lp, static_cast<uint32_t>(cls)) <= cutoff_key_[cutoff_len_ - 1];
    }
#ifdef CRNN_FAST_BEAM_AVX2
    if (avx2_) return rank_avx2(gathered_lp_, gathered_class_, n_gathered_, lp, cls) < p.cutoff_top_n;
#endif
    int32_t at_least = 0;
    for (int64_t i = 0; i < n_gathered_; ++i) at_least += gathered_lp_[i] >= lp;
    if (at_least <= p.cutoff_top_n) return true;
    int32_t rank = 0;
    for (int64_t i = 0; i < n_gathered_; ++i) {
      rank += (gathered_lp_[i] > lp) | ((gathered_lp_[i] == lp) & (gathered_class_[i] < cls));
    }
    return rank < p.cutoff_top_n;
  }

  C10_HOST_DEVICE float label_lp(const scalar_t* frame, int64_t sC, int32_t c, const Params& p) const {
    return in_cutoff(frame, sC, c, p) ? static_cast<float>(frame[c * sC]) : -INFINITY;
  }

  // Open-addressing table from the new extensions' prefix hashes to their index in next_.
  C10_HOST_DEVICE void index_extensions(int32_t n) {
    for (int64_t i = 0; i < L.slots; ++i) slot_val_[i] = -1;
    for (int32_t k = 0; k < n; ++k) {
      if (next_[k].label < 0) continue;
      int64_t i = static_cast<int64_t>(next_[k].hash & static_cast<uint64_t>(L.slots - 1));
      while (slot_val_[i] >= 0) i = (i + 1) & (L.slots - 1);
      slot_key_[i] = next_[k].hash;
      slot_val_[i] = k;
    }
  }

  C10_HOST_DEVICE int32_t find_extension(uint64_t h) const {
    int64_t i = static_cast<int64_t>(h & static_cast<uint64_t>(L.slots - 1));
    while (slot_val_[i] >= 0) {
      if (slot_key_[i] == h) return slot_val_[i];
      i = (i + 1) & (L.slots - 1);
    }
    return -1;
  }

  // Whether prefix k plus label c is in the beam.
  C10_HOST_DEVICE bool has_child(int32_t k, int32_t c) const {
    for (int32_t j = first_child_[k]; j >= 0; j = next_sibling_[j]) {
      if (beam_[j].last == c) return true;
    }
    return false;
  }

  // Candidate (k, r): prefix k plus the class of rank r.
  C10_HOST_DEVICE uint32_t candidate_seq(int32_t k, int64_t r) const {
    return static_cast<uint32_t>(L.K + (static_cast<int64_t>(k) << L.rank_bits) + r);
  }

  C10_HOST_DEVICE void stay(Entry& x, int32_t k) const {
    const Stay& s = stays_[k];
    x = beam_[k];
    x.pb = s.pb;
    x.pnb = s.pnb;
    x.score = s.score;
    x.last_lp = s.last_lp;
    x.last_t = s.last_t;
    x.src = k;
    x.label = -1;
  }

  // Prefix k plus the class of rank r (a repeat of its last label comes from pb only).
  C10_HOST_DEVICE void extend(Entry& x, int32_t k, int64_t r, int64_t t) const {
    const Entry& e = beam_[k];
    const int32_t c = sorted_class(r);
    const float lp = sorted_lp(r);
    extension(x, k, c, lp, (c == e.last ? e.pb : e.score) + lp, t);
  }

  // Prefix k plus class c of log-prob lp, scoring `score`, with its prefix hash
  // (inlined: the column loop calls it for most of the candidates it takes).
  C10_HOST_DEVICE C10_ALWAYS_INLINE void extension(Entry& x, int32_t k, int32_t c, float lp, float score,
                                                   int64_t t) const {
    x.pb = -INFINITY;
    x.pnb = x.score = score;
    x.last_lp = lp;
    x.last = x.label = c;
    x.len = beam_[k].len + 1;
    x.last_t = static_cast<int32_t>(t0_ + t);
    x.node = -1;  // (streaming: its node comes at the end of the chunk)
    x.src = k;
    x.parent_hash = beam_[k].hash;
    x.hash = extend_hash(x.parent_hash, c);
  }

  // The frame's best log-prob among the gathered classes other than the blank.
  C10_HOST_DEVICE float best_label_lp(const Params& p) {
    for (int64_t r = 0; r < n_classes_ && r < 2; ++r) {
      if (r == n_ranked_) rank_next();
      if (sorted_class(r) != p.blank) return sorted_lp(r);
    }
    return -INFINITY;
  }

  // A bound on every candidate of column r and later: the best prefix plus rank r.
  C10_HOST_DEVICE uint64_t column_bound(int64_t r) {
    if (size_ == 0 || r >= n_classes_) return kNone;
    if (r == n_ranked_) rank_next();
    return rank_key(beam_[0].score + sorted_lp(r), candidate_seq(0, r));
  }

  C10_HOST_DEVICE void open_column(const Params& p) {
    const int64_t r = next_column_++;
    next_bound_ = column_bound(next_column_);
    if (sorted_class(r) == p.blank) return;
    const int32_t j = n_open_++;
    column_rank_[j] = r;
    column_row_[j] = -1;
    column_class_[j] = sorted_class(r);
    column_lp_[j] = sorted_lp(r);
    move_column(j);
  }

  // Moves column j to its next candidate, queueing the repeats it passes.
  C10_HOST_DEVICE void move_column(int32_t j) {
    const int64_t r = column_rank_[j];
    const int32_t c = column_class_[j];
    const float lp = column_lp_[j];
    for (int32_t k = column_row_[j] + 1; k < size_; ++k) {
      const Entry& e = beam_[k];
      if (((children_[k] >> (c & 63)) & 1) && has_child(k, c)) continue;
      if (c == e.last) {
        enqueue(rank_key(e.pb + lp, candidate_seq(k, r)), e.pb + lp);
        continue;
      }
      column_row_[j] = k;
      column_score_[j] = e.score + lp;
      column_key_[j] = rank_key(column_score_[j], candidate_seq(k, r));
      return;
    }
    column_key_[j] = kNone;
  }

  // Min-queue of candidate rank keys (ties: the earlier candidate first).
  C10_HOST_DEVICE void enqueue(uint64_t key, float score) {
    if (score == -INFINITY) return;
    int32_t i = queue_size_++;
    while (i > 0) {
      const int32_t parent = (i - 1) / 4;
      if (queue_[parent] < key) break;
      queue_[i] = queue_[parent];
      i = parent;
    }
    queue_[i] = key;
  }

  C10_HOST_DEVICE void dequeue() {
    const int32_t size = --queue_size_;
    const uint64_t last = queue_[size];
    queue_[size] = kNone;
    if (size > 0) replace_top(last);
  }

  // Puts `key` in place of the queue's top, moving it down as far as it belongs; the
  // slots past the end hold kNone, so every node has four children to compare.
  C10_HOST_DEVICE void replace_top(uint64_t key) {
    const int32_t size = queue_size_;
    queue_[size] = queue_[size + 1] = queue_[size + 2] = queue_[size + 3] = kNone;
    int32_t i = 0;
    while (true) {
      const int32_t first = 4 * i + 1;
      if (first >= size) break;
      int32_t child = first;
      uint64_t best = queue_[first];
      for (int32_t j = first + 1; j < first + 4; ++j) {
        const bool less = queue_[j] < best;
        best = less ? queue_[j] : best;
        child = less ? j : child;
      }
      if (key < best) break;
      queue_[i] = best;
      i = child;
    }
    queue_[i] = key;
  }

  // Reads the best top_paths prefixes back through the history.
  C10_HOST_DEVICE void write_paths(int64_t len, int64_t top_paths, int32_t* tokens, int32_t* out_lengths,
                                   float* scores, int32_t* timesteps) const {
    for (int64_t k = 0; k < top_paths; ++k) {
      int32_t* row = tokens + k * L.T;
      int32_t* times = timesteps + k * L.T;
      for (int64_t i = 0; i < L.T; ++i) row[i] = times[i] = -1;
      if (k >= size_) {
        out_lengths[k] = 0;
        scores[k] = -INFINITY;
        continue;
      }
      const Entry& e = beam_[k];
      out_lengths[k] = e.len;
      scores[k] = e.score;
      int32_t cur = static_cast<int32_t>(k), pos = e.len - 1, token_t = e.last_t;
      for (int64_t t = len - 1; t >= 0 && pos >= 0; --t) {
        const int32_t label = hist_label_[t * L.K + cur];
        cur = hist_src_[t * L.K + cur];
        if (label >= 0) {
          row[pos] = label;
          times[pos] = token_t;
          --pos;
          if (t > 0) token_t = hist_last_t_[(t - 1) * L.K + cur];
        }
      }
    }
  }

  // Adds to the tree a node per label that the beam's entries appended in the last
  // `len` frames (an extension in the history, frame t and slot i, that several
  // entries descend from gets one node), and points each entry at its last label's.
  // A noded extension's history label becomes -2 - node.
  C10_HOST_DEVICE void grow_tree(int64_t len, const StreamIn& in, const Tree& tree) {
    int64_t used = *tree.used;
    for (int32_t k = 0; k < size_; ++k) {
      // The extensions on k's path not noded yet (m), newest first, and the node the
      // oldest of them extends: a noded extension's, else that of the entry in `in`.
      int32_t m = 0, joins = -2, cur = k;
      for (int64_t t = len - 1; t >= 0; --t) {
        const int32_t label = hist_label_[t * L.K + cur];
        if (label <= -2) {
          joins = -2 - label;
          break;
        }
        m += label >= 0;
        cur = hist_src_[t * L.K + cur];
      }
      if (joins == -2) joins = t0_ > 0 ? in.beams[cur].node : -1;
      cur = k;
      for (int64_t t = len - 1, j = m - 1; j >= 0; --t) {
        const int64_t at = t * L.K + cur;
        const int32_t src = hist_src_[at];
        if (hist_label_[at] >= 0) {
          const int32_t n = static_cast<int32_t>(used + j);
          const int32_t parent_t = t > 0 ? hist_last_t_[(t - 1) * L.K + src] : (t0_ > 0 ? in.beams[src].last_t : -1);
          tree.nodes[n] = {hist_label_[at], j > 0 ? n - 1 : joins, parent_t};
          hist_label_[at] = -2 - n;
          --j;
        }
        cur = src;
      }
      beam_[k].node = m > 0 ? static_cast<int32_t>(used + m - 1) : joins;
      used += m;
    }
    *tree.used = used;
  }

  Layout L;
  Entry *beam_, *next_;           // the beam, the next one
  Stay* stays_;                   // this frame's stays
  uint64_t* children_;            // per entry: a mask of its children's last labels (mod 64)
  int32_t *first_child_, *next_sibling_;  // per entry: its children in the beam, as a list
  int32_t* stay_at_;              // where each entry's stay went in the next beam, or -1
  bool* scored_;                  // per stay: whether its score replaced its bound
  float* gathered_lp_;            // the frame's classes above the floor (ranked ones: -inf)
  int32_t* gathered_class_;
  float* ranked_lp_;              // the first n_ranked_ of them in rank order
  int32_t* ranked_class_;
  uint64_t* cutoff_key_;          // under cutoff_prob: the gathered classes' rank keys
  uint64_t* queue_;               // stays and repeats, a 4-ary min-heap of rank keys
  uint64_t* column_key_;          // per open column: its head's rank key (kNone: exhausted)
  int32_t *column_row_, *column_rank_;  // per open column: its head's prefix, its class rank
  int32_t* column_class_;         // per open column: its class, log-prob, head's score
  float *column_lp_, *column_score_;
  uint64_t* slot_key_;            // prefix hash -> index of the frame's new extensions
  int32_t* slot_val_;
  int32_t *hist_src_, *hist_label_, *hist_last_t_;  // per frame and entry
  int64_t bytes_ = 0;
  int64_t t0_ = 0;     // the stream's frames before this run's first
  bool bad_ = false;   // the frame holds NaN or +inf
  bool avx2_ = false;  // gather and rank with AVX2
  int32_t size_ = 0, queue_size_ = 0, n_open_ = 0;
  int64_t n_gathered_ = 0, n_ranked_ = 0, n_classes_ = 0, cutoff_len_ = 0, next_column_ = 0;
  uint64_t next_bound_ = kNone;  // a bound on the columns not open yet
};

C10_HOST_DEVICE inline int64_t Layout::bytes() const { return Decoder<float>(*this, nullptr).bytes(); }

}  // namespace cuda_build / cpu_build
}  // namespace beam
}  // namespace crnn_fast
