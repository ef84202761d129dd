#include "sim/galaxy.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "model/errors.h"
#include "sim/reporter.h"
#include "sim/rng.h"
#include "sim/workload.h"

namespace ttmem::sim {
namespace {

using model::BufferType;
using model::DataType;

// Llama-3.1-70B.
constexpr uint64_t kDim = 8192;
constexpr uint64_t kLayers = 80;
constexpr uint64_t kHeads = 64;
constexpr uint64_t kKvHeads = 8;
constexpr uint64_t kHeadDim = 128;
constexpr uint64_t kFfn = 28672;
constexpr uint64_t kVocab = 128256;
constexpr uint64_t kBatch = 32;
constexpr uint64_t kKvBlocks = 1024;  // paged KV cache: blocks of 32 tokens
constexpr uint64_t kBlockTokens = 32;
constexpr uint64_t kRopeSeqLen = 4096;
constexpr uint64_t kTile = 32;
// Per layer: wqkv, wo, w1, w2, w3, K cache, V cache.
constexpr uint64_t kBuffersPerLayer = 7;
// Embedding, LM head, final norm, rope cos, sin and transformation matrix.
constexpr uint64_t kModelWideBuffers = 6;
// A decode op every 50 ms of real time per process while the state is held: with 64 processes
// on 32 chips, about 80,000 reports a second, a steady serving load.
constexpr double kOpIntervalSeconds = 0.05;

// One process's share of the model: tensor parallel over every chip of the mesh.
class Llama70b {
 public:
  explicit Llama70b(Workload& w) : w_(w) {
    const uint64_t tp = w.mesh().num_chips();
    if (tp == 0 || kHeads % tp != 0) {
      throw std::invalid_argument(fmt::format(
          "llama-70b-galaxy splits 64 attention heads over the chips, which {} chips cannot do: "
          "use a mesh of 1, 2, 4, 8, 16 or 32 chips",
          tp));
    }
    q_heads_ = kHeads / tp;
    kv_heads_ = std::max<uint64_t>(1, kKvHeads / tp);
    ffn_ = kFfn / tp;
    dim_ = kDim / tp;
    vocab_ = model::align_up(model::ceil_div(kVocab, tp), kTile);
    dram_banks_ = w.mesh().geometry().kind(BufferType::Dram).num_banks;
  }

  void load() {
    auto weight = [&](uint64_t rows, uint64_t cols, DataType dtype, const char* tag) {
      live_.push_back(w_.create(
          "ttnn::as_tensor", {rows, cols, dtype, dram_width_sharded(dram_banks_), false, tag}));
    };
    const TensorSpec cache{kKvBlocks * kv_heads_ * kBlockTokens, kHeadDim, DataType::BFloat8B,
                           dram_interleaved(), false, "kv_cache"};
    for (uint64_t layer = 0; layer < kLayers; ++layer) {
      weight(kDim, (q_heads_ + 2 * kv_heads_) * kHeadDim, DataType::BFloat8B, "weights");
      weight(q_heads_ * kHeadDim, kDim, DataType::BFloat8B, "weights");
      weight(kDim, ffn_, DataType::BFloat4B, "weights");
      weight(ffn_, kDim, DataType::BFloat8B, "weights");
      weight(kDim, ffn_, DataType::BFloat4B, "weights");
      live_.push_back(w_.create("ttnn::as_tensor", cache));
      live_.push_back(w_.create("ttnn::as_tensor", cache));
    }
    live_.push_back(w_.create("ttnn::as_tensor", {kVocab, dim_, DataType::BFloat16,
                                                  dram_interleaved(), true, "embedding"}));
    weight(kDim, vocab_, DataType::BFloat8B, "lm_head");
    live_.push_back(w_.create("ttnn::as_tensor", {kDim / kTile, kTile, DataType::BFloat16,
                                                  dram_interleaved(), true, "weights"}));
    for (int i = 0; i < 2; ++i) {  // cos and sin
      live_.push_back(w_.create("ttnn::as_tensor", {kRopeSeqLen, kHeadDim, DataType::BFloat16,
                                                    dram_interleaved(), false, "rope"}));
    }
    live_.push_back(w_.create("ttnn::as_tensor", {kTile, kTile, DataType::BFloat16,
                                                  dram_interleaved(), false, "rope"}));
    activation_ = w_.run({.name = "ttnn::embedding",
                          .outputs = {activation()},
                          .cores = 8,
                          .cbs = {2 * model::tile_bytes(DataType::BFloat16)}})[0];
  }

  // One decode op on every chip: its output is allocated, its input (the previous op's
  // output) freed.
  void decode_op() {
    activation_ = w_.run({.name = "ttnn::linear",
                          .outputs = {activation()},
                          .consumes = {activation_},
                          .cores = 32,
                          .cbs = {8 * model::tile_bytes(DataType::BFloat16),
                                  8 * model::tile_bytes(DataType::BFloat8B)}})[0];
  }

  void free_all() {
    w_.free(activation_);
    for (uint64_t id : live_) w_.free(id);
    live_.clear();
  }

  uint64_t q_heads() const { return q_heads_; }
  uint64_t ffn() const { return ffn_; }

 private:
  TensorSpec activation() const {
    return {kBatch, dim_, DataType::BFloat16, l1_interleaved()};
  }

  Workload& w_;
  uint64_t q_heads_ = 0, kv_heads_ = 0, ffn_ = 0, dim_ = 0, vocab_ = 0;
  uint32_t dram_banks_ = 0;
  std::vector<uint64_t> live_;
  uint64_t activation_ = 0;
};

using Clock = std::chrono::steady_clock;

// Decode ops at kOpIntervalSeconds until `until`.
void churn(Llama70b& llama, Clock::time_point until) {
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(kOpIntervalSeconds));
  for (auto next = Clock::now(); next < until; next += interval) {
    llama.decode_op();
    std::this_thread::sleep_until(std::min(next + interval, until));
  }
}

// One process's run. `loaded` is called once the model is in place, before the held churn.
template <class Loaded>
void run_one(const model::BoardSpec& board, const std::optional<model::MeshShape>& mesh_shape,
             const SimOptions& options, std::ostream& out, Loaded loaded) {
  ClientReporter reporter;
  Pacer pacer(options.speed);
  model::DeviceParams params;
  params.mesh = mesh_shape;
  model::MeshDevice mesh(board, params, &reporter);
  reporter.register_mesh(mesh);
  Workload w(mesh, pacer);
  Llama70b llama(w);
  out << fmt::format("opened {} mesh {} ({} chips); loading Llama-3.1-70B: {} q heads, {} FFN "
                     "columns per chip\n",
                     board.name, model::mesh_name(mesh.shape()), mesh.num_chips(),
                     llama.q_heads(), llama.ffn());
  llama.load();
  pacer.pause(1.0);
  loaded();
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(options.hold_seconds));
  churn(llama, until);
  out << "freeing everything\n";
  llama.free_all();
  w.clear_program_cache();
  mesh.close();
}

// A stream that discards: forked processes run quietly, the first one speaks for them all.
class NullStream : public std::ostream {
 public:
  NullStream() : std::ostream(nullptr) {}
};

}  // namespace

uint64_t llama_70b_buffers_per_chip() {
  return kLayers * kBuffersPerLayer + kModelWideBuffers + 1;
}

int run_llama_70b_galaxy(const model::BoardSpec& board,
                         const std::optional<model::MeshShape>& mesh, const SimOptions& options,
                         std::ostream& out, std::ostream& err) {
  if (options.processes == 0) throw std::invalid_argument("--processes must be 1 or more");
  // Every forked process writes one byte here once loaded.
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error("cannot create a pipe");
  out.flush();
  std::fflush(nullptr);  // a forked copy must not write this process's buffered output again
  const pid_t parent = ::getpid();
  std::vector<pid_t> children;
  for (uint32_t i = 1; i < options.processes; ++i) {
    const pid_t pid = ::fork();
    if (pid < 0) break;
    if (pid > 0) {
      children.push_back(pid);
      continue;
    }
    // A copy ends with the process that started it (a test or a user stopping `ttmem sim`).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) std::_Exit(1);
    ::close(ready[0]);
    SimOptions own = options;
    own.seed = options.seed + i;
    NullStream quiet;
    int status = 0;
    try {
      run_one(board, mesh, own, quiet, [&] {
        const char byte = 1;
        (void)!::write(ready[1], &byte, 1);
        // Closed at once, so the first process's wait ends when every copy has either said it
        // is loaded or died.
        ::close(ready[1]);
      });
    } catch (const model::ModelError& e) {
      err << fmt::format("process {}: {}\n", i, e.what());
      status = kTtMetalErrorExit;
    }
    err.flush();
    // exit(), not _exit(): the client library removes a segment with nothing live at exit.
    std::exit(status);
  }
  ::close(ready[1]);
  auto stop_children = [&] {
    for (pid_t pid : children) ::kill(pid, SIGTERM);
  };
  if (children.size() + 1 < options.processes) {
    stop_children();
    throw std::runtime_error(fmt::format("cannot start process {} of {}: fork failed",
                                         children.size() + 2, options.processes));
  }
  out << fmt::format("{} process{}, {} live buffers each on every chip once loaded\n",
                     options.processes, options.processes == 1 ? "" : "es",
                     llama_70b_buffers_per_chip());
  try {
    run_one(board, mesh, options, out, [&] {
      size_t loaded = 0;
      char byte;
      while (loaded < children.size() && ::read(ready[0], &byte, 1) == 1) ++loaded;
      out << fmt::format("{} of {} processes loaded\n", loaded + 1, options.processes);
      if (options.hold_seconds > 0) {
        out << fmt::format("holding for {} s\n", options.hold_seconds);
      }
      out.flush();
    });
  } catch (...) {
    stop_children();
    for (pid_t pid : children) ::waitpid(pid, nullptr, 0);
    ::close(ready[0]);
    throw;
  }
  ::close(ready[0]);
  int status = 0;
  for (pid_t pid : children) {
    int child = 0;
    ::waitpid(pid, &child, 0);
    if (!WIFEXITED(child) || WEXITSTATUS(child) != 0) status = kTtMetalErrorExit;
  }
  return status;
}

}  // namespace ttmem::sim
