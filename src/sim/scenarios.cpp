// The scenario table and the driver, plus the scenarios that end in a tt-metal failure or leave
// buffers behind. llama-decode lives in llama.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <memory>
#include <ostream>
#include <stdexcept>

#include "model/errors.h"
#include "sim/galaxy.h"
#include "sim/llama.h"
#include "sim/reporter.h"
#include "sim/rng.h"
#include "sim/sim.h"
#include "sim/workload.h"

namespace ttmem::sim {
namespace {

using model::BufferType;
using model::DataType;
using model::Layout;

constexpr std::array<ScenarioInfo, 7> kScenarios = {{
    {"llama-decode", "t3k",
     "Llama-3.1-8B decode, tensor parallel over the mesh, batch 32: weights, KV cache, prefill "
     "and compile churn, trace capture, then trace replay as a steady plateau"},
    {"cb-clash", "n150",
     "a UNet-like conv stack with l1_small_size set whose decoder conv's circular buffers clash "
     "with the L1 activations it keeps (tt-metal issues #6992, #5722)"},
    {"l1-small-clash", "n150",
     "a conv on a device opened with an l1_small_size copied from a bigger model: its CBs reach "
     "the L1 activations by less than the L1_SMALL it does not use (lowering it fixes the run)"},
    {"oom", "n150",
     "DRAM out of memory from fragmentation: enough free bytes in total, no block large enough"},
    {"leak", "n150", "a test suite that forgets to free some buffers, then exits"},
    {"trace-too-small", "t3k", "a decode trace capture larger than the trace region"},
    {"llama-70b-galaxy", "galaxy",
     "Llama-3.1-70B served by --processes N processes at once, each tensor parallel over every "
     "chip (567 live buffers a chip each), with a decode op every 50 ms per process while held: "
     "64 processes hold over a million live buffers under constant churn"},
}};

// What every scenario gets: the product, its mesh, the generator seeded by --seed, pacing and output.
struct Context {
  const ScenarioInfo& info;
  const model::BoardSpec& board;
  std::optional<model::MeshShape> mesh;
  const SimOptions& options;
  Rng rng;
  Pacer pacer;
  ClientReporter reporter;
  std::ostream& out;

  // Opens the mesh with `params` and registers its chips with the tracker.
  std::unique_ptr<model::MeshDevice> open(model::DeviceParams params) {
    params.mesh = mesh;
    auto device = std::make_unique<model::MeshDevice>(board, params, &reporter);
    reporter.register_mesh(*device);
    return device;
  }
};

void llama_decode(Context& ctx) {
  const LlamaRun run{.hold_seconds = ctx.options.hold_seconds};
  auto mesh = ctx.open(llama_device_params(run));
  Workload w(*mesh, ctx.pacer);
  run_llama_decode(w, ctx.rng, run, ctx.out);
}

void trace_too_small(Context& ctx) {
  // A trace region sized for a smaller model: the decode trace needs more than this.
  const LlamaRun run{.trace_region_size = 1'000'000 * ctx.rng.uniform(4, 8), .prefill = false};
  auto mesh = ctx.open(llama_device_params(run));
  Workload w(*mesh, ctx.pacer);
  run_llama_decode(w, ctx.rng, run, ctx.out);
}

// A row-major activation height-sharded over `cores` cores: one [pixels, channels] row a page.
TensorSpec sharded_activation(uint64_t pixels, uint64_t channels, uint32_t cores) {
  return {pixels, channels, DataType::BFloat16, l1_sharded(Layout::HeightSharded, cores), true};
}

// Local CBs of a 3x3 conv: an im2col activation block (32 rows, one kernel row, double
// buffered), the weight block for 32 output channels, the output block and the bias.
std::vector<uint64_t> conv_cbs(uint64_t in_channels) {
  constexpr uint64_t kRows = 32;
  constexpr uint64_t kOutBlock = 32;
  return {2 * kRows * 3 * in_channels * 2, 9 * in_channels * kOutBlock * 2, kRows * kOutBlock * 2,
          kOutBlock * 2 * kRows};
}

void cb_clash(Context& ctx) {
  auto mesh = ctx.open({.l1_small_size = 32'768});
  Workload w(*mesh, ctx.pacer);
  const uint32_t cores = mesh->geometry().num_cores();
  // Activations are sized per core so every product ends the same way: stage 0 holds 5,632 to
  // 6,656 pixels a core, and the skip connections the decoder needs stay in L1.
  const uint64_t pixels_per_core = 256 * ctx.rng.uniform(22, 26);
  ctx.out << fmt::format("UNet-like conv stack, {} pixels on {} cores, l1_small_size 32768 B\n",
                         pixels_per_core * cores, cores);

  // Conv2d caches its sharding configuration (reader indices) in L1_SMALL.
  auto conv = [&](uint64_t input, uint64_t pixels, uint64_t in_ch, uint64_t out_ch,
                  bool keep_input) {
    w.create("ttnn::as_tensor",
             {9 * in_ch, out_ch, DataType::BFloat16, dram_interleaved(), false, "weights"});
    const TensorSpec config{cores * 4,
                            256,
                            DataType::BFloat16,
                            {BufferType::L1Small, Layout::HeightSharded, cores},
                            true};
    auto outs =
        w.run({.name = "ttnn::conv2d",
               .outputs = {config, sharded_activation(pixels, out_ch, cores)},
               .consumes = keep_input ? std::vector<uint64_t>{} : std::vector<uint64_t>{input},
               .cores = cores,
               .cbs = conv_cbs(in_ch)});
    ctx.pacer.pause(0.5);
    return outs[1];
  };

  uint64_t pixels = pixels_per_core * cores;
  uint64_t x = w.create("ttnn::from_torch", sharded_activation(pixels, 16, cores));
  std::vector<std::pair<uint64_t, uint64_t>> skips;  // (buffer, channels), kept for the decoder
  uint64_t channels = 16;
  for (uint64_t stage = 0; stage < 4; ++stage) {
    const uint64_t out_ch = 32u << stage;
    ctx.out << fmt::format("encoder stage {}: conv {} -> {} channels at {} pixels\n", stage,
                           channels, out_ch, pixels);
    x = conv(x, pixels, channels, out_ch, false);
    skips.emplace_back(x, out_ch);
    pixels /= 4;
    x = w.run({.name = "ttnn::max_pool2d",
               .outputs = {sharded_activation(pixels, out_ch, cores)},
               .cores = cores,
               .cbs = {4 * 32 * out_ch * 2}})[0];
    channels = out_ch;
  }
  ctx.out << fmt::format("bottleneck: conv {} -> {} channels\n", channels, 2 * channels);
  x = conv(x, pixels, channels, 2 * channels, false);
  channels *= 2;
  // Decoder: upsample, concatenate the skip connection, convolve. The concatenated input widens
  // the weight and activation blocks until the CB region reaches the activations held in L1.
  while (!skips.empty()) {
    const auto [skip, skip_ch] = skips.back();
    skips.pop_back();
    pixels *= 4;
    const uint64_t up = w.run({.name = "ttnn::upsample",
                               .outputs = {sharded_activation(pixels, channels, cores)},
                               .consumes = {x},
                               .cores = cores,
                               .cbs = {2 * 32 * channels * 2}})[0];
    const uint64_t cat = w.run({.name = "ttnn::concat",
                                .outputs = {sharded_activation(pixels, channels + skip_ch, cores)},
                                .consumes = {up, skip},
                                .cores = cores,
                                .cbs = {2 * 32 * channels * 2}})[0];
    ctx.out << fmt::format("decoder: conv {} -> {} channels at {} pixels\n", channels + skip_ch,
                           skip_ch, pixels);
    x = conv(cat, pixels, channels + skip_ch, skip_ch, false);
    channels = skip_ch;
  }
  // The first decoder conv clashes at every size the seed picks (its CB region ends near 844 KB
  // while the kept activations reach below that); reaching here means the model's rules
  // changed, which the scenario reports rather than hides.
  throw std::logic_error("cb-clash finished without a circular-buffer clash");
}

void l1_small_clash(Context& ctx) {
  // 96-160 KiB of L1_SMALL, where the conv's reader indices need 4 KiB a core.
  const uint64_t l1_small_size = 1024 * ctx.rng.uniform(96, 160);
  auto mesh = ctx.open({.l1_small_size = l1_small_size});
  Workload w(*mesh, ctx.pacer);
  const uint32_t cores = mesh->geometry().num_cores();
  ctx.out << fmt::format("conv on {} cores, l1_small_size {} B (copied from a bigger model)\n",
                         cores, l1_small_size);
  // Reader indices: two 2 KiB rows a core in L1_SMALL; the input: 512 KiB a core in L1.
  w.create("ttnn::conv2d", {uint64_t(cores) * 2, 1024, DataType::BFloat16,
                            {BufferType::L1Small, Layout::HeightSharded, cores}, true});
  w.create("ttnn::from_torch", sharded_activation(uint64_t(cores) * 4096, 64, cores));
  ctx.pacer.pause(0.5);
  // The conv's CBs end 8-32 KiB (seeded) above the input: less than the unused L1_SMALL.
  const model::ChipGeometry& g = mesh->geometry();
  const uint64_t lowest = mesh->chip(0).allocator().lowest_l1_address().value_or(g.l1_per_core);
  const uint64_t over = 1024 * ctx.rng.uniform(8, 32);
  const uint64_t weights = 9 * 64 * 32 * 2;  // 3x3 kernel, 64 input channels, 32 outputs
  w.run({.name = "ttnn::conv2d",
         .cores = cores,
         .cbs = {weights, lowest + over - g.l1_unreserved_base - weights}});
  throw std::logic_error("l1-small-clash finished without a circular-buffer clash");
}

void oom(Context& ctx) {
  auto mesh = ctx.open({});
  Workload w(*mesh, ctx.pacer);
  const model::KindGeometry& dram = mesh->geometry().kind(BufferType::Dram);
  const uint64_t page = 4096;
  ctx.out << "serving requests: caching per-request tensors in DRAM\n";
  // Cache tensors of varying size until the next would not fit.
  std::vector<uint64_t> cached;
  for (;;) {
    const uint64_t per_bank = page * 256 * ctx.rng.uniform(16, 64);  // 16 .. 64 MiB per bank
    if (mesh->chip(0).memory_view(BufferType::Dram).largest_contiguous_bytes_free_per_bank <
        per_bank) {
      break;
    }
    cached.push_back(
        w.create("ttnn::as_tensor", {per_bank * dram.num_banks / page, page / 2, DataType::BFloat16,
                                     dram_interleaved(), true, "kv_cache"}));
    ctx.pacer.pause(0.2);
  }
  ctx.out << fmt::format("{} tensors cached; finished requests release every other one\n",
                         cached.size());
  for (size_t i = 1; i < cached.size(); i += 2) {
    w.free(cached[i]);
    ctx.pacer.pause(0.2);
  }
  // A long-context request needs one tensor larger than any hole but smaller than all of them.
  const model::MemoryView view = mesh->chip(0).memory_view(BufferType::Dram);
  const uint64_t largest = view.largest_contiguous_bytes_free_per_bank;
  const uint64_t per_bank =
      model::align_up(largest + (view.total_bytes_free_per_bank - largest) / 2, page);
  ctx.out << fmt::format(
      "long-context request: {} B per bank; {} B free per bank, largest block "
      "{} B\n",
      per_bank, view.total_bytes_free_per_bank, largest);
  w.run({.name = "ttnn::concat",
         .outputs = {{per_bank * dram.num_banks / page, page / 2, DataType::BFloat16,
                      dram_interleaved(), true}}});
  throw std::logic_error("oom finished without running out of memory");
}

void leak(Context& ctx) {
  auto mesh = ctx.open({});
  Workload w(*mesh, ctx.pacer);
  const uint32_t cores = mesh->geometry().num_cores();
  const uint64_t tests = ctx.rng.uniform(8, 14);
  uint64_t leaked = 0;
  uint64_t leaked_bytes = 0;
  for (uint64_t t = 0; t < tests; ++t) {
    auto dim = [&] { return 32 * ctx.rng.uniform(8, 64); };
    const uint64_t m = dim();
    const uint64_t k = dim();
    const uint64_t n = dim();
    const uint64_t a = w.create("ttnn::from_torch", {m, k, DataType::BFloat16, dram_interleaved()});
    const uint64_t b = w.create("ttnn::from_torch", {k, n, DataType::BFloat8B, dram_interleaved()});
    const uint64_t c = w.run({.name = "ttnn::matmul",
                              .outputs = {{m, n, DataType::BFloat16, l1_interleaved()}},
                              .cores = cores,
                              .cbs = {2 * 4 * 2048, 2 * 4 * 1088, 4 * 2048}})[0];
    const uint64_t d = w.run({.name = "ttnn::add",
                              .outputs = {{m, n, DataType::BFloat16, dram_interleaved()}},
                              .consumes = {c},
                              .cores = cores,
                              .cbs = {2 * 2048, 2 * 2048, 2 * 2048}})[0];
    std::vector<uint64_t> outstanding = {a, b, d};
    // A third of the tests keep a reference to one tensor past their end; the last test does
    // if none did, so every run leaks.
    const bool forgets = ctx.rng.chance(1, 3) || (t + 1 == tests && leaked == 0);
    if (forgets) {
      const size_t kept = ctx.rng.uniform(0, outstanding.size() - 1);
      const model::Buffer* buffer = mesh->find(outstanding[kept]);
      leaked += 1;
      leaked_bytes += buffer->size;
      outstanding.erase(outstanding.begin() + static_cast<ptrdiff_t>(kept));
    }
    for (uint64_t id : outstanding) w.free(id);
    ctx.out << fmt::format("test {:2}: matmul {}x{}x{} passed{}\n", t + 1, m, k, n,
                           forgets ? " (left a tensor allocated)" : "");
    ctx.pacer.pause(0.4);
  }
  // Tearing down clears the program cache, so no CB outlives the suite; the buffers do.
  w.clear_program_cache();
  ctx.out << fmt::format("{} tests passed; {} buffers ({} B) were never freed\n", tests, leaked,
                         leaked_bytes);
  if (ctx.options.hold_seconds > 0) Pacer::hold(ctx.options.hold_seconds);
}

}  // namespace

std::span<const ScenarioInfo> scenarios() {
  return kScenarios;
}

const ScenarioInfo* find_scenario(std::string_view name) {
  for (const ScenarioInfo& s : kScenarios) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

int run_scenario(std::string_view name, const SimOptions& options, std::ostream& out,
                 std::ostream& err) {
  const ScenarioInfo* info = find_scenario(name);
  if (info == nullptr) {
    std::string names;
    for (const ScenarioInfo& s : kScenarios)
      names += (names.empty() ? "" : ", ") + std::string(s.name);
    throw std::invalid_argument(
        fmt::format("unknown scenario '{}': choose one of {}", name, names));
  }
  const std::string device =
      options.device_type.empty() ? std::string(info->default_device) : options.device_type;
  const model::BoardSpec* board = model::find_board(device);
  if (board == nullptr) {
    throw std::invalid_argument(
        fmt::format("unknown device type '{}': choose one of {}", device, model::board_names()));
  }
  std::optional<model::MeshShape> mesh;
  if (!options.mesh.empty()) {
    mesh = model::parse_mesh(options.mesh);
    if (!mesh) {
      throw std::invalid_argument(
          fmt::format("bad mesh '{}': give ROWSxCOLS, e.g. 2x4", options.mesh));
    }
  }
  if (options.speed < 0) throw std::invalid_argument("--speed must be 0 or more");
  if (options.processes != 1 && info->name != "llama-70b-galaxy") {
    throw std::invalid_argument("--processes is for llama-70b-galaxy only");
  }

  Context ctx{*info, *board, mesh, options, Rng(options.seed), Pacer(options.speed), {}, out};
  try {
    if (info->name == "llama-decode") llama_decode(ctx);
    if (info->name == "cb-clash") cb_clash(ctx);
    if (info->name == "oom") oom(ctx);
    if (info->name == "l1-small-clash") l1_small_clash(ctx);
    if (info->name == "leak") leak(ctx);
    if (info->name == "trace-too-small") trace_too_small(ctx);
    if (info->name == "llama-70b-galaxy") {
      return run_llama_70b_galaxy(*board, mesh, options, out, err);
    }
  } catch (const model::ModelError& e) {
    if (e.kind() == model::ErrorKind::InvalidRequest) throw std::invalid_argument(e.what());
    out.flush();
    err << e.what() << '\n';
    if (!e.answer().empty()) err << "answer: " << e.answer() << '\n';
    err.flush();
    // The state stays as tt-metal left it: nothing is freed after the failure.
    Pacer::hold(options.hold_seconds);
    return kTtMetalErrorExit;
  }
  return 0;
}

}  // namespace ttmem::sim
