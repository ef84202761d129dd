#include "sim/llama.h"

#include <fmt/format.h>

#include <algorithm>
#include <ostream>
#include <stdexcept>
#include <vector>

#include "model/errors.h"

namespace ttmem::sim {
namespace {

using model::BufferType;
using model::DataType;
using model::Layout;

// Llama-3.1-8B.
constexpr uint64_t kDim = 4096;
constexpr uint64_t kLayers = 32;
constexpr uint64_t kHeads = 32;
constexpr uint64_t kKvHeads = 8;
constexpr uint64_t kHeadDim = 128;
constexpr uint64_t kFfn = 14336;
constexpr uint64_t kVocab = 128256;
constexpr uint64_t kBatch = 32;
constexpr uint64_t kKvBlocks = 1024;  // paged KV cache: blocks of 32 tokens
constexpr uint64_t kBlockTokens = 32;
constexpr uint64_t kRopeSeqLen = 4096;
constexpr uint64_t kTile = 32;

// The slice of the model one chip holds under tensor parallelism over `tp` chips.
struct ChipShare {
  uint64_t tp;
  uint64_t q_heads;   // 4 on T3K
  uint64_t kv_heads;  // 1 on T3K; replicated when there are more chips than KV heads
  uint64_t ffn;       // 1792 on T3K
  uint64_t dim;       // residual width: 512 on T3K
  uint64_t vocab;     // LM-head columns: 16032 on T3K
};

ChipShare share_for(uint64_t tp) {
  if (tp == 0 || kHeads % tp != 0) {
    throw std::invalid_argument(fmt::format(
        "llama-decode splits 32 attention heads over the chips, which {} chips cannot do: use a "
        "device type or mesh with 1, 2, 4, 8, 16 or 32 chips",
        tp));
  }
  return ChipShare{tp,        kHeads / tp, std::max<uint64_t>(1, kKvHeads / tp),
                   kFfn / tp, kDim / tp,   model::align_up(model::ceil_div(kVocab, tp), kTile)};
}

enum class Mode { Prefill, Decode };

// Local CBs of a matmul program: double-buffered in0 and in1 blocks and an output block, with
// the K block at 4 tiles and the M and N blocks capped as the program configs cap them.
std::vector<uint64_t> matmul_cbs(uint64_t rows, uint64_t n, uint32_t cores, DataType weight) {
  const uint64_t m_block = std::min<uint64_t>(model::ceil_div(rows, kTile), 8);
  const uint64_t n_block = std::min<uint64_t>(model::ceil_div(model::ceil_div(n, kTile), cores), 8);
  const uint64_t k_block = 4;
  const uint64_t act = model::tile_bytes(DataType::BFloat16);
  return {2 * m_block * k_block * act, 2 * k_block * n_block * model::tile_bytes(weight),
          m_block * n_block * act};
}

// Tile-count CBs of an elementwise or data-movement program: `tiles` per CB, bfloat16.
std::vector<uint64_t> tile_cbs(std::initializer_list<uint64_t> tiles) {
  std::vector<uint64_t> out;
  for (uint64_t t : tiles) out.push_back(t * model::tile_bytes(DataType::BFloat16));
  return out;
}

struct LayerWeights {
  uint64_t wqkv, wo, w1, w2, w3, attention_norm, ffn_norm;
};

class LlamaDecode {
 public:
  explicit LlamaDecode(Workload& w)
      : w_(w),
        share_(share_for(w.mesh().num_chips())),
        dram_banks_(w.mesh().geometry().kind(BufferType::Dram).num_banks),
        cores_(w.mesh().geometry().num_cores()) {}

  void load_weights(const Pacer& pacer) {
    const double per_buffer = 6.0 / (kLayers * 7 + 6);
    auto weight = [&](uint64_t rows, uint64_t cols, DataType dtype, const char* tag) {
      const uint64_t id = w_.create(
          "ttnn::as_tensor", {rows, cols, dtype, dram_width_sharded(dram_banks_), false, tag});
      pacer.pause(per_buffer);
      return id;
    };
    auto norm = [&](const char* tag) {
      // [1, 1, dim/32, 32] bfloat16, row-major: one 64 B row per page.
      const uint64_t id = w_.create("ttnn::as_tensor", {kDim / kTile, kTile, DataType::BFloat16,
                                                        dram_interleaved(), true, tag});
      pacer.pause(per_buffer);
      return id;
    };
    const uint64_t qkv_cols = (share_.q_heads + 2 * share_.kv_heads) * kHeadDim;
    for (uint64_t layer = 0; layer < kLayers; ++layer) {
      LayerWeights lw{};
      lw.attention_norm = norm("weights");
      lw.wqkv = weight(kDim, qkv_cols, DataType::BFloat8B, "weights");
      lw.wo = weight(share_.q_heads * kHeadDim, kDim, DataType::BFloat8B, "weights");
      lw.ffn_norm = norm("weights");
      lw.w1 = weight(kDim, share_.ffn, DataType::BFloat4B, "weights");
      lw.w3 = weight(kDim, share_.ffn, DataType::BFloat4B, "weights");
      lw.w2 = weight(share_.ffn, kDim, DataType::BFloat8B, "weights");
      layers_.push_back(lw);
    }
    persistent_.push_back(norm("weights"));  // final norm
    persistent_.push_back(w_.create("ttnn::as_tensor", {kVocab, share_.dim, DataType::BFloat16,
                                                        dram_interleaved(), true, "embedding"}));
    persistent_.push_back(weight(kDim, share_.vocab, DataType::BFloat8B, "lm_head"));
    for (int i = 0; i < 2; ++i) {  // cos and sin
      persistent_.push_back(w_.create("ttnn::as_tensor", {kRopeSeqLen, kHeadDim, DataType::BFloat16,
                                                          dram_interleaved(), false, "rope"}));
    }
    persistent_.push_back(w_.create(
        "ttnn::as_tensor", {kTile, kTile, DataType::BFloat16, dram_interleaved(), false, "rope"}));
    pacer.pause(per_buffer);
  }

  void allocate_kv_cache(const Pacer& pacer) {
    // Per layer, K and V of [1024 blocks, kv heads, 32, 128] bfloat8_b.
    const TensorSpec cache{kKvBlocks * share_.kv_heads * kBlockTokens,
                           kHeadDim,
                           DataType::BFloat8B,
                           dram_interleaved(),
                           false,
                           "kv_cache"};
    for (uint64_t layer = 0; layer < kLayers; ++layer) {
      persistent_.push_back(w_.create("ttnn::as_tensor", cache));
      persistent_.push_back(w_.create("ttnn::as_tensor", cache));
      pacer.pause(2.0 / kLayers);
    }
  }

  // One forward pass over all layers: prefill of `rows` tokens or a decode step of the batch.
  // Returns the sampled tokens (on chip 0).
  uint64_t forward(Mode mode, uint64_t rows, const Pacer& pacer, double seconds) {
    mode_ = mode;
    rows_ = rows;
    uint64_t x = w_.run({.name = "ttnn::embedding",
                         .outputs = {activation(share_.dim)},
                         .cores = 8,
                         .cbs = tile_cbs({2, 2})})[0];
    for (size_t layer = 0; layer < layers_.size(); ++layer) {
      x = decoder_layer(x);
      pacer.pause(seconds / kLayers);
    }
    return sample(x);
  }

  void open_inputs() {
    // Inputs a decode trace reads every iteration; the host updates them in place.
    inputs_.push_back(w_.create("ttnn::from_torch", {kBatch, kTile, DataType::BFloat16,
                                                     l1_interleaved(), false, "decode_inputs"}));
    inputs_.push_back(w_.create("ttnn::from_torch", {kTile, kBatch, DataType::BFloat16,
                                                     dram_interleaved(), false, "decode_inputs"}));
    inputs_.push_back(
        w_.create("ttnn::from_torch", {kBatch, kKvBlocks / kBlockTokens, DataType::BFloat16,
                                       dram_interleaved(), false, "page_table"}));
    // The coordinator chip also holds the embedded prompt the host sends for each user.
    inputs_.push_back(w_.create(
        "ttnn::from_torch",
        {kBatch, kDim, DataType::BFloat16, l1_interleaved(), false, "input_embeddings"}, 0));
  }

  void free_all(const Pacer& pacer, const std::vector<uint64_t>& extra) {
    for (uint64_t id : extra) w_.free(id);
    for (uint64_t id : inputs_) w_.free(id);
    for (const LayerWeights& lw : layers_) {
      for (uint64_t id : {lw.wqkv, lw.wo, lw.w1, lw.w2, lw.w3, lw.attention_norm, lw.ffn_norm}) {
        w_.free(id);
      }
      pacer.pause(1.0 / kLayers);
    }
    for (uint64_t id : persistent_) w_.free(id);
    inputs_.clear();
    layers_.clear();
    persistent_.clear();
  }

  const ChipShare& share() const { return share_; }

 private:
  // An activation of the current pass: L1 width-sharded in decode, DRAM interleaved in prefill.
  TensorSpec activation(uint64_t cols, DataType dtype = DataType::BFloat16) const {
    MemoryConfig memory =
        mode_ == Mode::Decode ? l1_sharded(Layout::WidthSharded, 32) : dram_interleaved();
    return {rows_, cols, dtype, memory};
  }
  // Per-head tensors: decode pads each user's heads to a tile and height-shards users over
  // cores; prefill keeps [heads x tokens, head_dim] in DRAM.
  TensorSpec heads(uint64_t n_heads) const {
    if (mode_ == Mode::Decode) {
      return {kBatch * kTile, kHeadDim, DataType::BFloat16,
              l1_sharded(Layout::HeightSharded, static_cast<uint32_t>(kBatch))};
    }
    return {n_heads * rows_, kHeadDim, DataType::BFloat16, dram_interleaved()};
  }
  bool decode() const { return mode_ == Mode::Decode; }
  uint32_t matmul_cores() const { return std::min<uint32_t>(cores_, 32); }

  uint64_t linear(uint64_t input, uint64_t n, DataType weight, bool consume) {
    std::vector<uint64_t> consumed;
    if (consume) consumed.push_back(input);
    return w_.run({.name = "ttnn::linear",
                   .outputs = {activation(n)},
                   .consumes = consumed,
                   .cores = matmul_cores(),
                   .cbs = matmul_cbs(rows_, n, matmul_cores(), weight)})[0];
  }

  // The full hidden state from every chip's slice (a no-op on one chip).
  uint64_t all_gather(uint64_t x, bool consume) {
    if (share_.tp == 1 && !consume) return x;
    return w_.run({.name = "ttnn::all_gather",
                   .outputs = {activation(kDim)},
                   .consumes = consume ? std::vector<uint64_t>{x} : std::vector<uint64_t>{},
                   .cores = 8,
                   .cbs = tile_cbs({8, 8})})[0];
  }

  // Normalises the gathered hidden state; on one chip that is the residual itself, which the
  // norm must not free.
  uint64_t rms_norm(uint64_t x, uint64_t residual) {
    return w_.run({.name = "ttnn::rms_norm",
                   .outputs = {activation(kDim)},
                   .consumes = x == residual ? std::vector<uint64_t>{} : std::vector<uint64_t>{x},
                   .cores = 32,
                   .cbs = tile_cbs({4, 4, 1, 1, 4})})[0];
  }

  // Sums partial results over the chips and keeps this chip's slice.
  uint64_t reduce_scatter(uint64_t x) {
    return w_.run({.name = "ttnn::reduce_scatter",
                   .outputs = {activation(share_.dim)},
                   .consumes = {x},
                   .cores = 8,
                   .cbs = tile_cbs({8, 8, 4})})[0];
  }

  uint64_t add(uint64_t a, uint64_t b) {
    return w_.run({.name = "ttnn::add",
                   .outputs = {activation(share_.dim)},
                   .consumes = {a, b},
                   .cores = 16,
                   .cbs = tile_cbs({2, 2, 2})})[0];
  }

  uint64_t attention(uint64_t x) {
    const uint64_t normed = rms_norm(all_gather(x, false), x);
    const uint64_t qkv =
        linear(normed, (share_.q_heads + 2 * share_.kv_heads) * kHeadDim, DataType::BFloat8B, true);
    const auto qkv_heads =
        w_.run({.name = decode() ? "ttnn::experimental::nlp_create_qkv_heads_decode"
                                 : "ttnn::experimental::nlp_create_qkv_heads",
                .outputs = {heads(share_.q_heads), heads(share_.kv_heads), heads(share_.kv_heads)},
                .consumes = {qkv},
                .cores = static_cast<uint32_t>(kBatch),
                .cbs = tile_cbs({4, 4})});
    auto rotary = [&](uint64_t t, uint64_t n_heads) {
      return w_.run({.name = "ttnn::experimental::rotary_embedding_llama",
                     .outputs = {heads(n_heads)},
                     .consumes = {t},
                     .cores = static_cast<uint32_t>(kBatch),
                     .cbs = tile_cbs({4, 4, 4, 1, 4})})[0];
    };
    const uint64_t q = rotary(qkv_heads[0], share_.q_heads);
    const uint64_t k = rotary(qkv_heads[1], share_.kv_heads);
    for (uint64_t t : {k, qkv_heads[2]}) {
      w_.run({.name = decode() ? "ttnn::experimental::paged_update_cache"
                               : "ttnn::experimental::paged_fill_cache",
              .consumes = {t},
              .cores = static_cast<uint32_t>(kBatch),
              .cbs = tile_cbs({4, 4, 1})});
    }
    const uint64_t attn =
        w_.run({.name = decode() ? "ttnn::transformer::paged_scaled_dot_product_attention_decode"
                                 : "ttnn::transformer::scaled_dot_product_attention",
                .outputs = {heads(share_.q_heads)},
                .consumes = {q},
                .cores = matmul_cores(),
                // q, K and V chunks of 4x4 tiles (double-buffered), scores, statistics, output.
                .cbs = tile_cbs({4, 32, 32, 16, 2, 4})})[0];
    const uint64_t concat = w_.run({.name = decode() ? "ttnn::experimental::nlp_concat_heads_decode"
                                                     : "ttnn::experimental::nlp_concat_heads",
                                    .outputs = {activation(share_.q_heads * kHeadDim)},
                                    .consumes = {attn},
                                    .cores = static_cast<uint32_t>(kBatch),
                                    .cbs = tile_cbs({4, 4})})[0];
    return reduce_scatter(linear(concat, kDim, DataType::BFloat8B, true));
  }

  uint64_t mlp(uint64_t h) {
    const uint64_t normed = rms_norm(all_gather(h, false), h);
    const uint64_t gate = linear(normed, share_.ffn, DataType::BFloat4B, false);
    const uint64_t up = linear(normed, share_.ffn, DataType::BFloat4B, true);
    const uint64_t product = w_.run({.name = "ttnn::mul",
                                     .outputs = {activation(share_.ffn)},
                                     .consumes = {gate, up},
                                     .cores = matmul_cores(),
                                     .cbs = tile_cbs({4, 4, 4})})[0];
    return reduce_scatter(linear(product, kDim, DataType::BFloat8B, true));
  }

  uint64_t decoder_layer(uint64_t x) {
    const uint64_t h = add(x, attention(x));
    return add(h, mlp(h));
  }

  // Final norm and LM head on every chip; the coordinator chip gathers the logits and samples.
  uint64_t sample(uint64_t x) {
    const uint64_t normed = rms_norm(all_gather(x, true), 0);
    const uint64_t logits = linear(normed, share_.vocab, DataType::BFloat8B, true);
    const uint64_t gathered = w_.run(
        {.name = "ttnn::all_gather",
         .outputs = {{kBatch, share_.vocab * share_.tp, DataType::BFloat16, dram_interleaved()}},
         .consumes = {logits},
         .cores = 8,
         .cbs = tile_cbs({8, 8}),
         .chip = 0})[0];
    const uint64_t top = w_.run({.name = "ttnn::topk",
                                 .outputs = {{kBatch, 8192, DataType::BFloat16, l1_interleaved()}},
                                 .consumes = {gathered},
                                 .cores = cores_,
                                 .cbs = tile_cbs({16, 16, 32, 8}),
                                 .chip = 0})[0];
    return w_.run({.name = "ttnn::sampling",
                   .outputs = {{kBatch, kTile, DataType::BFloat16, l1_interleaved()}},
                   .consumes = {top},
                   .cores = 32,
                   .cbs = tile_cbs({8, 8, 1}),
                   .chip = 0})[0];
  }

  Workload& w_;
  ChipShare share_;
  uint32_t dram_banks_;
  uint32_t cores_;
  Mode mode_ = Mode::Decode;
  uint64_t rows_ = kBatch;
  std::vector<LayerWeights> layers_;
  std::vector<uint64_t> persistent_;  // embedding, LM head, norms, rope, KV cache
  std::vector<uint64_t> inputs_;
};

}  // namespace

model::DeviceParams llama_device_params(const LlamaRun& run) {
  return model::DeviceParams{.trace_region_size = run.trace_region_size};
}

void run_llama_decode(Workload& w, Rng& rng, const LlamaRun& run, std::ostream& out) {
  const Pacer& pacer = w.pacer();
  model::MeshDevice& mesh = w.mesh();
  LlamaDecode llama(w);
  const ChipShare& share = llama.share();
  out << fmt::format("opened {} mesh {} ({} chips), trace_region_size {} B\n", mesh.board().name,
                     model::mesh_name(mesh.shape()), mesh.num_chips(), run.trace_region_size);
  pacer.pause(0.5);

  out << fmt::format("loading weights: {} q heads, {} kv heads, {} FFN columns per chip\n",
                     share.q_heads, share.kv_heads, share.ffn);
  llama.load_weights(pacer);
  out << "allocating the paged KV cache\n";
  llama.allocate_kv_cache(pacer);

  if (run.prefill) {
    const uint64_t tokens = 128 * rng.uniform(1, 8);
    out << fmt::format("prefill of {} tokens (compiling programs)\n", tokens);
    w.free(llama.forward(Mode::Prefill, tokens, pacer, 4.0));
  }
  llama.open_inputs();
  out << "decode: compile run\n";
  w.free(llama.forward(Mode::Decode, kBatch, pacer, 2.0));

  out << "decode: trace capture\n";
  w.begin_capture();
  const uint64_t tokens = llama.forward(Mode::Decode, kBatch, pacer, 2.0);
  const uint64_t trace = w.end_capture();
  const model::Buffer* trace_buffer = mesh.find(trace);
  out << fmt::format("captured a {} B trace into the {} B trace region\n", trace_buffer->size,
                     mesh.geometry().trace_region_size);

  out << fmt::format("decode: replaying the trace for {} iterations\n", run.replay_iterations);
  for (uint32_t i = 0; i < run.replay_iterations; ++i) {
    pacer.pause(run.replay_seconds / run.replay_iterations);
  }
  if (run.hold_seconds > 0) {
    out << fmt::format("holding for {} s\n", run.hold_seconds);
    out.flush();
    Pacer::hold(run.hold_seconds);
  }

  out << "releasing the trace and freeing everything\n";
  mesh.release_trace(trace);
  llama.free_all(pacer, {tokens});
  mesh.close();
}

}  // namespace ttmem::sim
