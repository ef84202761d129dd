#include "model/replay.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "model/allocator.h"
#include "model/device.h"

namespace ttmem::model {
namespace {

struct LiveBuffer {
  BufferType type;
  uint64_t address;         // replayed
  uint64_t block;           // replayed bytes per bank, as the free list holds it
  uint64_t recorded_block;  // recorded per-bank size
  uint64_t trace_bytes;     // TRACE (or a dynamic trace in DRAM): its part of the budget
  uint32_t tag;
};

class ChipReplay {
 public:
  ChipReplay(const ChipGeometry& g, const RecordedChip& recorded, std::span<const std::string> tags)
      : allocator_(g), recorded_(recorded), tags_(tags) {
    live_.reserve(1024);
  }

  // Applies one event; throws ModelError for tt-metal's failures.
  // `launch_complete`: the last CB event of a launch (tt-metal checks the whole set).
  void apply(const ReplayEvent& e, const ReplayOptions& options, ReplayResult& result,
             bool launch_complete);
  uint64_t cb_offset() const { return cb_offset_; }

 private:
  void allocate(const ReplayEvent& e, const ReplayOptions& options, ReplayResult& result);
  void free(uint64_t buffer_id);
  void launch_cbs(const ReplayEvent& e, const ReplayOptions& options, ReplayResult& result,
                  bool launch_complete);
  void note_peak(BufferType type, ReplayResult& result);
  std::string holders(BufferType type) const;

  Allocator allocator_;
  const RecordedChip& recorded_;
  std::span<const std::string> tags_;
  std::unordered_map<uint64_t, LiveBuffer> live_;
  std::array<uint64_t, kNumBufferTypes> allocated_{};           // replayed, per bank
  std::array<uint64_t, kNumBufferTypes> recorded_allocated_{};  // recorded, per bank
  std::map<uint64_t, uint64_t> program_cb_offset_;  // program -> CB region end above the base
  uint64_t cb_offset_ = 0;                          // the highest of them
  uint64_t trace_bytes_ = 0;
};

bool dynamic_trace(const ChipGeometry& g) {
  return g.trace_region_size == 0 &&
         (g.messages == MessageVintage::V2026 || g.messages == MessageVintage::Current);
}

void ChipReplay::apply(const ReplayEvent& e, const ReplayOptions& options, ReplayResult& result,
                       bool launch_complete) {
  switch (e.type) {
    case ReplayEvent::Type::Alloc:
      allocate(e, options, result);
      break;
    case ReplayEvent::Type::Free:
      free(e.buffer_id);
      break;
    case ReplayEvent::Type::CbAlloc:
      launch_cbs(e, options, result, launch_complete);
      break;
    case ReplayEvent::Type::CbFreeProgram:
      if (program_cb_offset_.erase(e.buffer_id) != 0) {
        cb_offset_ = 0;
        for (const auto& [program, offset] : program_cb_offset_) {
          cb_offset_ = std::max(cb_offset_, offset);
        }
      }
      break;
    case ReplayEvent::Type::CbFreeAll:
      program_cb_offset_.clear();
      cb_offset_ = 0;
      break;
  }
}

void ChipReplay::allocate(const ReplayEvent& e, const ReplayOptions& options,
                          ReplayResult& result) {
  if (e.kind >= kNumBufferTypes || e.kind == uint32_t(BufferType::SystemMemory)) return;
  const ChipGeometry& g = allocator_.geometry();
  BufferConfig config{.type = BufferType(e.kind),
                      .size = e.size,
                      .page_size = e.page_size,
                      .layout = Layout(e.layout)};
  if (is_sharded(config.layout)) config.num_shards = e.num_banks;
  uint64_t trace_bytes = 0;
  if (config.type == BufferType::Trace) {
    trace_bytes = e.size;
    if (dynamic_trace(g)) {
      config.type = BufferType::Dram;  // no trace region: trace buffers go in DRAM, top-down
      config.bottom_up = false;
    } else if (options.check_trace_budget && trace_bytes_ + e.size > g.trace_region_size) {
      ModelError error(ErrorKind::TraceTooSmall,
                       fmt::format("Creating trace buffers of size {}B on MeshDevice {}, but only "
                                   "{}B is allocated for trace region.",
                                   trace_bytes_ + e.size, recorded_.process, g.trace_region_size));
      error.set_answer(trace_answer(trace_bytes_ + e.size, g.trace_region_size));
      error.set_needed(trace_bytes_ + e.size);
      throw error;
    }
  }
  const Placement p = allocator_.plan(config);
  FreeList& bank = allocator_.bank(config.type);
  const auto address = bank.allocate(p.size_per_bank, p.bottom_up, g.policy);
  if (!address) {
    // The same failure allocate_lockstep reports, for a chip of one.
    Allocator* self = &allocator_;
    try {
      allocate_lockstep({&self, 1}, config);
    } catch (ModelError& error) {
      if (error.kind() == ErrorKind::OutOfMemory) {
        const std::string by_tag = holders(config.type);
        if (!by_tag.empty()) error.set_answer(error.answer() + "; biggest holders: " + by_tag);
      }
      throw;
    }
  }
  const uint64_t block = bank.block_size(p.size_per_bank);
  const uint64_t recorded_block = e.size_per_bank;
  live_[e.buffer_id] = {config.type, *address, block, recorded_block, trace_bytes, e.tag};
  const auto k = uint32_t(config.type);
  allocated_[k] += block;
  recorded_allocated_[e.kind] += recorded_block;
  trace_bytes_ += trace_bytes;
  result.peak_trace_bytes = std::max(result.peak_trace_bytes, trace_bytes_);
  KindPeak& recorded_peak = result.peaks[e.kind];
  recorded_peak.recorded_peak_per_bank =
      std::max(recorded_peak.recorded_peak_per_bank, recorded_allocated_[e.kind]);
  if (config.type == BufferType::L1Small) {
    result.peak_l1_small_span =
        std::max(result.peak_l1_small_span, bank.offset() + bank.size() - *address);
  }
  note_peak(config.type, result);
}

void ChipReplay::note_peak(BufferType type, ReplayResult& result) {
  KindPeak& peak = result.peaks[uint32_t(type)];
  if (allocated_[uint32_t(type)] <= peak.peak_per_bank) return;
  // A new peak: the free-block figures of this moment (a scan, only when the peak grows).
  const BankStatistics s = allocator_.statistics(type);
  peak.peak_per_bank = allocated_[uint32_t(type)];
  peak.free_at_peak = s.total_free;
  peak.largest_free_at_peak = s.largest_free_block;
}

void ChipReplay::free(uint64_t buffer_id) {
  auto it = live_.find(buffer_id);
  if (it == live_.end()) return;  // allocated before the recording began, or never replayed
  const LiveBuffer& b = it->second;
  allocator_.bank(b.type).deallocate(b.address);
  allocated_[uint32_t(b.type)] -= b.block;
  const uint32_t recorded_kind = b.trace_bytes ? uint32_t(BufferType::Trace) : uint32_t(b.type);
  recorded_allocated_[recorded_kind] -= b.recorded_block;
  trace_bytes_ -= b.trace_bytes;
  live_.erase(it);
}

void ChipReplay::launch_cbs(const ReplayEvent& e, const ReplayOptions& options,
                            ReplayResult& result, bool launch_complete) {
  const ChipGeometry& g = allocator_.geometry();
  // Where the CB ends above the recorded unreserved base is what the program's CB sizes decide;
  // the new base moves the whole set.
  const uint64_t recorded_end = e.address + e.size;
  const uint64_t offset =
      recorded_end > recorded_.l1_unreserved_base ? recorded_end - recorded_.l1_unreserved_base : 0;
  uint64_t& program_offset = program_cb_offset_[e.buffer_id];
  program_offset = std::max(program_offset, offset);
  cb_offset_ = std::max(cb_offset_, program_offset);
  KindPeak& cb_peak = result.peaks[kCbKind];
  cb_peak.peak_per_bank = std::max(cb_peak.peak_per_bank, cb_offset_);
  cb_peak.recorded_peak_per_bank = cb_peak.peak_per_bank;
  if (!launch_complete) return;

  const uint64_t region_end = g.l1_unreserved_base + program_offset;
  // Recordings keep each CB's core count, not its range: the texts name the whole grid.
  const std::string cores =
      core_range_text(CoreRange{{0, 0}, {g.grid_x - 1, g.grid_y - 1}}, g.messages);
  if (region_end > g.l1_per_core) throw_cb_beyond_l1(cores, region_end, g.l1_per_core);
  const auto lowest = allocator_.lowest_l1_address();
  if (!lowest) return;
  const int64_t margin = int64_t(*lowest) - int64_t(region_end);
  if (!result.min_clash_margin || margin < *result.min_clash_margin) {
    result.min_clash_margin = margin;
    result.min_margin_program = e.buffer_id;
  }
  if (margin < 0 && options.check_clashes) {
    const FreeList& small = allocator_.bank(BufferType::L1Small);
    const uint64_t small_in_use =
        small.lowest_allocated() ? small.offset() + small.size() - *small.lowest_allocated() : 0;
    try {
      throw_cb_clash(e.buffer_id, cores, *lowest, region_end);
    } catch (ModelError& error) {
      error.set_answer(clash_answer(g, e.buffer_id, region_end - *lowest, small_in_use));
      throw;
    }
  }
}

std::string ChipReplay::holders(BufferType type) const {
  std::map<std::string, Holding> by_tag;
  for (const auto& [id, b] : live_) {
    if (b.type != type) continue;
    Holding& h = by_tag[b.tag < tags_.size() ? tags_[b.tag] : std::string()];
    h.bytes_per_bank += b.block;
    ++h.buffers;
  }
  return biggest_holders(by_tag);
}

}  // namespace

uint32_t ReplayInput::chips_needed() const {
  std::map<uint32_t, uint32_t> per_process;
  for (const RecordedChip& c : chips) ++per_process[c.process];
  uint32_t most = 0;
  for (const auto& [process, count] : per_process) most = std::max(most, count);
  return most;
}

ReplayConfig recorded_config(const ReplayInput& input) {
  if (input.chips.empty()) {
    throw_invalid("the recording has no device: record a run that opens one");
  }
  const RecordedChip& chip = input.chips.front();
  ReplayConfig config;
  config.board = find_board(chip.board);
  if (config.board == nullptr) {
    throw_invalid(fmt::format("the recording's device '{}' is not a product ttmem models: give "
                              "--device-type ({})",
                              chip.board, board_names()));
  }
  DeviceParams& p = config.params;
  p.trace_region_size = chip.trace_region_size;
  p.l1_small_size = chip.l1_small_size;
  if (chip.l1_unreserved_base != config.board->chip.l1_unreserved_base) {
    p.l1_unreserved_base = chip.l1_unreserved_base;
  }
  for (const DispatchGrid& grid : config.board->grids) {
    if (grid.grid_x == chip.grid_x && grid.grid_y == chip.grid_y) p.dispatch = grid.dispatch;
  }
  p.profiler = chip.dram_bank_base == config.board->chip.dram_base_profiler;
  return config;
}

ReplayResult replay(const ReplayInput& input, const ReplayConfig& config,
                    const ReplayOptions& options) {
  const BoardSpec& board = *config.board;
  ReplayResult result;
  result.geometry = compute_geometry(board, config.params);
  const uint32_t needed = input.chips_needed();
  if (needed > board.num_chips) {
    throw_invalid(fmt::format("the recording uses {} devices but {} has {}: choose a product "
                              "with at least {} chips",
                              needed, board.name, board.num_chips, needed));
  }
  for (uint32_t k = 0; k < result.peaks.size(); ++k) {
    const KindGeometry& kind = result.geometry.kinds[k];
    result.peaks[k].capacity_per_bank = kind.bank_size;
  }
  std::vector<ChipReplay> chips;
  chips.reserve(input.chips.size());
  for (const RecordedChip& recorded : input.chips) {
    chips.emplace_back(result.geometry, recorded, input.tags);
  }
  const std::vector<ReplayEvent>& events = input.events;
  for (size_t i = 0; i < events.size(); ++i) {
    const ReplayEvent& e = events[i];
    // A launch reports its CBs one after another; the checks see the whole set.
    const bool launch_complete =
        e.type != ReplayEvent::Type::CbAlloc || i + 1 == events.size() ||
        events[i + 1].type != ReplayEvent::Type::CbAlloc || events[i + 1].chip != e.chip ||
        events[i + 1].buffer_id != e.buffer_id;
    try {
      chips[e.chip].apply(e, options, result, launch_complete);
    } catch (ModelError& error) {
      result.failure = ReplayFailure{error, result.events, e.chip};
      break;
    }
    ++result.events;
  }
  return result;
}

Advice advise(const ReplayInput& input) {
  Advice advice;
  advice.recorded = recorded_config(input);
  // Measure under the recorded configuration with the budget and clash checks off: what the run
  // holds in the trace region and in L1_SMALL, and its tightest CB margin.
  ReplayConfig measure = advice.recorded;
  uint64_t trace_total = 0;
  for (const ReplayEvent& e : input.events) {
    if (e.type == ReplayEvent::Type::Alloc && e.kind == uint32_t(BufferType::Trace)) {
      trace_total += e.size;
    }
  }
  measure.params.trace_region_size = std::max(measure.params.trace_region_size, trace_total);
  const ReplayResult measured = replay(input, measure, {.check_clashes = false,
                                                        .check_trace_budget = false});
  const ChipGeometry& g = measured.geometry;
  advice.min_trace_region_size = align_up(measured.peak_trace_bytes, g.dram_alignment);
  advice.l1_small_min = align_up(measured.peak_l1_small_span, g.dram_alignment);
  if (measured.min_clash_margin) {
    // Every L1 buffer sits the same distance below L1_SMALL, so l1_small_size S moves the
    // lowest one by (recorded S - S): no clash while S <= recorded S + the smallest margin.
    const int64_t limit = int64_t(g.l1_small_size) + *measured.min_clash_margin;
    if (limit < 0) {
      advice.l1_small_range_empty = true;
    } else {
      advice.l1_small_max = uint64_t(limit) / g.dram_alignment * g.dram_alignment;
      advice.l1_small_range_empty = *advice.l1_small_max < advice.l1_small_min;
    }
    if (*measured.min_clash_margin < 0) {
      advice.clash_bytes_over = uint64_t(-*measured.min_clash_margin);
      advice.clash_program = measured.min_margin_program;
    }
  }
  advice.proposal = advice.recorded.params;
  advice.proposal.trace_region_size = advice.min_trace_region_size;
  // Keep the recorded l1_small_size when it works; otherwise the largest that avoids clashes.
  if (advice.l1_small_max && !advice.l1_small_range_empty &&
      advice.proposal.l1_small_size > *advice.l1_small_max) {
    advice.proposal.l1_small_size = *advice.l1_small_max;
  }
  advice.proposal.l1_small_size = std::max(advice.proposal.l1_small_size, advice.l1_small_min);
  advice.proposal_result = replay(input, {advice.recorded.board, advice.proposal});

  for (std::string_view name : {"n150", "n300", "t3k", "p150", "galaxy"}) {
    Verdict v{.board = std::string(name)};
    ReplayConfig config{find_board(name), advice.proposal};
    config.params.dispatch.reset();  // each product's default dispatch
    try {
      const ReplayResult r = replay(input, config);
      if (r.failure) {
        v.reason = fmt::format("{}: {}", r.failure->error.kind_name(),
                               r.failure->error.answer().empty() ? r.failure->error.what()
                                                                 : r.failure->error.answer());
      } else {
        v.fits = true;
        const KindPeak& dram = r.peaks[uint32_t(BufferType::Dram)];
        const KindPeak& l1 = r.peaks[uint32_t(BufferType::L1)];
        v.dram_headroom_per_bank = dram.capacity_per_bank - dram.peak_per_bank;
        v.l1_headroom_per_bank = l1.capacity_per_bank - l1.peak_per_bank;
      }
    } catch (const ModelError& e) {
      v.reason = e.what();
    }
    advice.verdicts.push_back(std::move(v));
  }
  return advice;
}

}  // namespace ttmem::model
