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
// Identical prefixes are merged (prefixes are identified by a 64-bit rolling hash),
// and the beam_width best candidates survive. Each prefix's extensions form a stream
// in decreasing class probability; the stays and the streams' heads are taken best
// first from one queue (ties: the earlier candidate, stays before extensions, then by
// prefix and class rank), and only the stream a taken candidate came from moves on,
// so a frame costs O(K log K + C) rather than O(K * C), with the same result as
// trying every class. Only the classes that can beat the worst stay from the best
// prefix are gathered, and they are ranked lazily, as deep as some stream goes.
// Classes outside ctcdecode's cutoff_top_n / cutoff_prob set for the frame are not
// considered at all.
//
// Prefixes are never copied: every frame records, per surviving entry, its source
// entry and the label it appended (or -1); the best prefixes are read back at the
// end. The timestep of a label is the frame of its most probable emission, as in
// ctcdecode.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include <torch/headeronly/macros/Macros.h>

namespace crnn_fast {
namespace beam {

constexpr uint64_t kEmptyHash = 0x9E3779B97F4A7C15ull;
constexpr int64_t kMaxBeamWidth = 4096;
constexpr int64_t kMaxWorkspaceBytes = int64_t{1} << 30;  // per sequence
// Up to this many, a frame's classes are put in order by counting, for each, the
// ones that rank before it: no branches to mispredict.
constexpr int64_t kRankByCounting = 16;

C10_HOST_DEVICE inline uint64_t extend_hash(uint64_t h, int32_t label) {
  uint64_t z = h + 0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(label) + 2);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

C10_HOST_DEVICE inline float log_add(float a, float b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  const float hi = a > b ? a : b, lo = a > b ? b : a;
  return hi + log1pf(expf(lo - hi));
}

// A float's bits as an unsigned key that orders the other way round: larger values
// get smaller keys (-0 is taken as +0; NaN never reaches the decoder).
C10_HOST_DEVICE inline uint32_t descending_key(float v) {
  v += 0.0f;
  uint32_t u;
  memcpy(&u, &v, sizeof(u));
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
};


// Sizes of one sequence's scratch, carved out of a caller-provided buffer.
struct Layout {
  int64_t K, T, sorted, gathered, slots;
  C10_HOST_DEVICE Layout(int64_t beam_width, int64_t frames, int64_t classes)
      : K(beam_width), T(frames), sorted(2 * beam_width + 1 < classes ? 2 * beam_width + 1 : classes),
        gathered(4 * sorted), slots(8) {
    while (slots < 2 * K) slots *= 2;
  }
  // Bytes: two beams and the stays (entries), the prefix-hash table, a label mask per
  // entry, the frame's ranked classes (and their scratch), the candidate queue, T*K
  // history (source, label, last_t); 8-byte fields first, and the total rounded to 16
  // so that consecutive sequences' buffers stay aligned.
  C10_HOST_DEVICE int64_t bytes() const {
    const int64_t raw =
        3 * K * static_cast<int64_t>(sizeof(Entry)) + slots * 12 + K * 8 + (gathered + 1) * 8 + kRankByCounting * 8 + 3 * K * 8 + 3 * T * K * 4;
    return (raw + 15) / 16 * 16;
  }
};

struct Params {
  int64_t beam_width, top_paths, blank, cutoff_top_n;
  float blank_penalty, cutoff_prob;
  bool prune;  // cutoff_top_n < C or cutoff_prob < 1
};

template <typename scalar_t>
class Decoder {
 public:
  C10_HOST_DEVICE Decoder(const Layout& layout, unsigned char* buffer) : L(layout) {
    Entry* entries = reinterpret_cast<Entry*>(buffer);
    beam_ = entries;
    next_ = entries + L.K;
    stays_ = entries + 2 * L.K;
    slot_key_ = reinterpret_cast<uint64_t*>(entries + 3 * L.K);
    children_ = slot_key_ + L.slots;
    ranked_ = children_ + L.K;
    scratch_ = ranked_ + L.gathered + 1;
    queue_ = scratch_ + kRankByCounting;
    slot_val_ = reinterpret_cast<int32_t*>(queue_ + 3 * L.K);
    hist_src_ = slot_val_ + L.slots;
    hist_label_ = hist_src_ + L.T * L.K;
    hist_last_t_ = hist_label_ + L.T * L.K;
  }

  // Decodes `len` frames of (C,) log-prob rows (`frame(t)[c * sC]`) and writes the
  // top_paths best prefixes: tokens/timesteps rows of width T padded with -1.
  C10_HOST_DEVICE void run(const scalar_t* log_probs, int64_t sT, int64_t sC, int64_t len, int64_t C,
                           const Params& p, int32_t* tokens, int32_t* out_lengths, float* scores,
                           int32_t* timesteps) {
    size_ = 1;
    beam_[0] = Entry{kEmptyHash, 0, 0.0f, -INFINITY, 0.0f, -INFINITY, -1, 0, -1, -1, -1};
    for (int64_t t = 0; t < len; ++t) step(log_probs + t * sT, sC, C, t, p);
    write_paths(len, p.top_paths, tokens, out_lengths, scores, timesteps);
  }

 private:
  C10_HOST_DEVICE void step(const scalar_t* frame, int64_t sC, int64_t C, int64_t t, const Params& p) {
    if (p.prune) {  // the cutoff ranks classes before the stays need it
      gather_classes(frame, sC, C, -INFINITY);
      while (n_ranked_ < n_classes_) rank_next();
      count_cutoff(p);
    }
    build_table();
    queue_size_ = 0;
    const float blank_lp = in_cutoff(frame, sC, C, p.blank, p)
                               ? static_cast<float>(frame[p.blank * sC]) - p.blank_penalty
                               : -INFINITY;

    // Stays: every prefix kept, fed by blanks, repeats and its parent's emission.
    float worst = INFINITY;
    for (int32_t k = 0; k < size_; ++k) {
      const Entry& e = beam_[k];
      Entry& s = stays_[k];
      s = e;
      s.src = k;
      s.label = -1;
      s.pb = e.score + blank_lp;
      s.pnb = -INFINITY;
      if (e.len > 0) {
        const float lp = label_lp(frame, sC, C, e.last, p);
        s.pnb = e.pnb + lp;
        const int32_t parent = lookup(e.parent_hash);
        if (parent >= 0) children_[parent] |= uint64_t{1} << (e.last & 63);
        if (parent >= 0 && lp > -INFINITY) {
          const Entry& q = beam_[parent];
          s.pnb = log_add(s.pnb, (q.last == e.last ? q.pb : q.score) + lp);
          if (lp > s.last_lp) {
            s.last_lp = lp;
            s.last_t = static_cast<int32_t>(t);
          }
        }
      }
      s.score = log_add(s.pb, s.pnb);
      worst = s.score < worst ? s.score : worst;
      enqueue(rank_key(s.score, static_cast<uint32_t>(k)), s.score);
    }

    if (!p.prune) {
      // With the beam full of stays, a class whose log-prob added to the best prefix's
      // score cannot beat the worst stay never enters: rank only the classes above that
      // floor (a prefix of the frame's ranking), lowered by a rounding margin.
      float floor = -INFINITY;
      if (size_ == L.K) {
        const float best = beam_[0].score;
        floor = (worst - best) - 1e-5f * (1.0f + fabsf(worst) + fabsf(best));
      }
      gather_classes(frame, sC, C, floor);
      cutoff_len_ = C;
    }

    // Extensions: per prefix, a stream of candidates in decreasing class probability.
    // The candidates (stays and stream heads) are taken best first, and the stream a
    // taken candidate came from moves on, until the beam is full: classes are ranked
    // only as deep as some prefix needs.
    for (int32_t k = 0; k < size_; ++k) advance(k, 0, p);
    int32_t n = 0;
    while (n < L.K && queue_size_ > 0) {
      const uint64_t key = dequeue();
      const uint32_t seq = static_cast<uint32_t>(key & 0xFFFFFFFFu);
      if (seq < static_cast<uint32_t>(L.K)) {
        next_[n++] = stays_[seq];
        continue;
      }
      const int32_t k = static_cast<int32_t>((seq - L.K) / L.sorted);
      const int64_t r = (seq - L.K) % L.sorted;
      const Entry& e = beam_[k];
      const int32_t c = sorted_class(r);
      const float lp = sorted_lp(r);
      Entry& x = next_[n++];
      x.pb = -INFINITY;
      x.pnb = (c == e.last ? e.pb : e.score) + lp;
      x.score = x.pnb;
      x.last_lp = lp;
      x.last = c;
      x.len = e.len + 1;
      x.last_t = static_cast<int32_t>(t);
      x.src = k;
      x.label = c;
      if (c != e.last) advance(k, r + 1, p);  // a repeat of the last label is a candidate of its own
    }
    for (int32_t k = 0; k < n; ++k) {
      Entry& x = next_[k];
      if (x.label >= 0) {
        x.parent_hash = beam_[x.src].hash;
        x.hash = extend_hash(x.parent_hash, x.label);
      }
      hist_src_[t * L.K + k] = x.src;
      hist_label_[t * L.K + k] = x.label;
      hist_last_t_[t * L.K + k] = x.last_t;
    }
    Entry* old = beam_;
    beam_ = next_;
    next_ = old;
    size_ = n;
  }

  // Gathers the frame's classes above `floor` as rank keys (log-prob desc, then index
  // asc), without branching; they are ranked lazily, as the extensions ask for them
  // (rank_next), and only the best `sorted` are used. When more than `gathered` pass
  // the floor, insertion into a short sorted list ranks the best `sorted` at once (most
  // classes fail its first comparison).
  C10_HOST_DEVICE void gather_classes(const scalar_t* frame, int64_t sC, int64_t C, float floor) {
    int64_t n = 0;
    for (int64_t c = 0; c < C && n <= L.gathered; ++c) {
      const float v = static_cast<float>(frame[c * sC]);
      ranked_[n] = rank_key(v, static_cast<uint32_t>(c));
      n += v > floor;
    }
    if (n <= L.gathered) {
      n_ranked_ = 0;
      n_classes_ = n < L.sorted ? n : L.sorted;
      n_gathered_ = n;
      if (n <= kRankByCounting) {
        for (int64_t i = 0; i < n; ++i) {
          int64_t r = 0;
          for (int64_t j = 0; j < n; ++j) r += ranked_[j] < ranked_[i];
          scratch_[r] = ranked_[i];
        }
        for (int64_t i = 0; i < n; ++i) ranked_[i] = scratch_[i];
        n_ranked_ = n;
      }
      return;
    }
    uint64_t gate = rank_key(floor, 0);  // what a class must beat: the floor, then the last kept
    n = 0;
    for (int64_t c = 0; c < C; ++c) {
      const uint64_t key = rank_key(static_cast<float>(frame[c * sC]), static_cast<uint32_t>(c));
      if (!(key < gate)) continue;
      int64_t i = n < L.sorted ? n++ : n - 1;
      while (i > 0 && key < ranked_[i - 1]) {
        ranked_[i] = ranked_[i - 1];
        --i;
      }
      ranked_[i] = key;
      if (n == L.sorted) gate = ranked_[n - 1];
    }
    n_ranked_ = n_classes_ = n_gathered_ = n;
  }

  // Ranks the next class: a selection step over the gathered ones not yet ranked.
  C10_HOST_DEVICE void rank_next() {
    const int64_t r = n_ranked_++;
    int64_t at = r;
    uint64_t best = ranked_[r];
    for (int64_t j = r + 1; j < n_gathered_; ++j) {
      const bool less = ranked_[j] < best;
      best = less ? ranked_[j] : best;
      at = less ? j : at;
    }
    ranked_[at] = ranked_[r];
    ranked_[r] = best;
  }

  C10_HOST_DEVICE int32_t sorted_class(int64_t r) const { return static_cast<int32_t>(ranked_[r] & 0xFFFFFFFFu); }
  C10_HOST_DEVICE float sorted_lp(int64_t r) const { return from_descending_key(static_cast<uint32_t>(ranked_[r] >> 32)); }

  // How many of the sorted classes pass ctcdecode's pruning: ranks r < cutoff_top_n
  // whose more probable classes sum to less than cutoff_prob (a prefix of the ranks);
  // as in ctcdecode, cutoff_prob 1 applies no probability rule (rounding can make a
  // frame's probabilities sum past 1).
  C10_HOST_DEVICE void count_cutoff(const Params& p) {
    cutoff_len_ = n_classes_;
    double before = 0.0;
    for (int64_t r = 0; r < n_classes_; ++r) {
      if (r >= p.cutoff_top_n || (p.cutoff_prob < 1.0f && !(before < p.cutoff_prob))) {
        cutoff_len_ = r;
        return;
      }
      before += exp(static_cast<double>(sorted_lp(r)));
    }
  }

  C10_HOST_DEVICE bool in_cutoff_rank(int64_t r) const { return r < cutoff_len_; }

  C10_HOST_DEVICE bool in_cutoff(const scalar_t* frame, int64_t sC, int64_t C, int64_t c, const Params& p) const {
    if (!p.prune) return true;
    for (int64_t r = 0; r < n_classes_; ++r) {
      if (sorted_class(r) == c) return in_cutoff_rank(r);
    }
    if (cutoff_len_ < n_classes_) return false;  // the cut falls inside the sorted list
    // Ranked beyond the sorted list: count and sum the classes ahead of it.
    const float v = static_cast<float>(frame[c * sC]);
    int64_t rank = 0;
    double before = 0.0;
    for (int64_t i = 0; i < C; ++i) {
      const float u = static_cast<float>(frame[i * sC]);
      if (u > v || (u == v && i < c)) {
        ++rank;
        before += exp(static_cast<double>(u));
      }
    }
    return rank < p.cutoff_top_n && (p.cutoff_prob >= 1.0f || before < p.cutoff_prob);
  }

  C10_HOST_DEVICE float label_lp(const scalar_t* frame, int64_t sC, int64_t C, int32_t c, const Params& p) const {
    return in_cutoff(frame, sC, C, c, p) ? static_cast<float>(frame[c * sC]) : -INFINITY;
  }

  // Open-addressing table from prefix hash to beam index.
  C10_HOST_DEVICE void build_table() {
    for (int64_t i = 0; i < L.slots; ++i) slot_val_[i] = -1;
    for (int32_t k = 0; k < size_; ++k) children_[k] = 0;
    for (int32_t k = 0; k < size_; ++k) {
      int64_t i = static_cast<int64_t>(beam_[k].hash & static_cast<uint64_t>(L.slots - 1));
      while (slot_val_[i] >= 0) i = (i + 1) & (L.slots - 1);
      slot_key_[i] = beam_[k].hash;
      slot_val_[i] = k;
    }
  }

  C10_HOST_DEVICE int32_t lookup(uint64_t h) const {
    int64_t i = static_cast<int64_t>(h & static_cast<uint64_t>(L.slots - 1));
    while (slot_val_[i] >= 0) {
      if (slot_key_[i] == h) return slot_val_[i];
      i = (i + 1) & (L.slots - 1);
    }
    return -1;
  }

  // Queues prefix k's next extension at rank r or later: classes that are the blank,
  // outside the cutoff or already a child in the beam are passed over; so is the
  // prefix's last label, whose candidate (from pb, a smaller score) is queued on its own.
  C10_HOST_DEVICE void advance(int32_t k, int64_t r, const Params& p) {
    const Entry& e = beam_[k];
    for (; r < n_classes_; ++r) {
      if (r == n_ranked_) rank_next();
      const int32_t c = sorted_class(r);
      if (c == p.blank || !in_cutoff_rank(r)) continue;
      if (((children_[k] >> (c & 63)) & 1) && lookup(extend_hash(e.hash, c)) >= 0) continue;
      const uint32_t seq = static_cast<uint32_t>(L.K + k * L.sorted + r);
      const float lp = sorted_lp(r);
      if (c == e.last) {
        enqueue(rank_key(e.pb + lp, seq), e.pb + lp);
        continue;
      }
      enqueue(rank_key(e.score + lp, seq), e.score + lp);
      return;
    }
  }

  // Min-queue of candidate rank keys (ties: the earlier candidate first).
  C10_HOST_DEVICE void enqueue(uint64_t key, float score) {
    if (score == -INFINITY) return;
    int32_t i = queue_size_++;
    while (i > 0) {
      const int32_t parent = (i - 1) / 2;
      if (queue_[parent] < key) break;
      queue_[i] = queue_[parent];
      i = parent;
    }
    queue_[i] = key;
  }

  C10_HOST_DEVICE uint64_t dequeue() {
    const uint64_t top = queue_[0];
    const uint64_t key = queue_[--queue_size_];
    int32_t i = 0;
    while (true) {
      int32_t child = 2 * i + 1;
      if (child >= queue_size_) break;
      child += child + 1 < queue_size_ && queue_[child + 1] < queue_[child];
      if (key < queue_[child]) break;
      queue_[i] = queue_[child];
      i = child;
    }
    queue_[i] = key;
    return top;
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

  Layout L;
  Entry *beam_, *next_, *stays_;
  uint64_t* slot_key_;
  uint64_t *children_, *ranked_, *scratch_, *queue_;  // label masks of the beam's children; the frame's classes
  int32_t *slot_val_, *hist_src_, *hist_label_, *hist_last_t_;
  int32_t size_ = 0, queue_size_ = 0;
  int64_t n_gathered_ = 0, n_ranked_ = 0, n_classes_ = 0, cutoff_len_ = 0;
};

}  // namespace beam
}  // namespace crnn_fast
