// The tt-metal hook class over the mapping (mapping.hpp), for every hook vintage.
//
// GraphProcessor<Base, Traits> derives from tt-metal's IGraphProcessor (Base) and declares the
// hook signatures of every vintage. Exactly those that match a virtual function of Base override
// it (a non-template member function with a base virtual's name and signature overrides it
// without the `override` keyword); the others are ordinary overloads nothing calls. So one class
// serves every tt-metal version without version macros:
//   track_allocate_cb(const CoreRange&, addr, size)                                  before 2025
//   track_allocate_cb(const CoreRangeSet&, addr, size)                               before 2025
//   track_allocate_cb(const CoreRangeSet&, addr, size, bool is_globally_allocated)   before 2025
//   track_allocate_cb(const CoreRangeSet&, addr, size, bool, const IDevice*)         2025 on
//   track_allocate_dataflow_buffer(const CoreRangeSet&, addr, size, bool borrows_memory,
//                                  const IDevice*)                                   2026 main
//   track_allocate_scratchpad(const CoreRangeSet&, addr, size, const IDevice*)       2026 main
//   track_program(Program*) and track_program(Program*, const IDevice*)
//   track_function_start(std::string_view, FunctionArgs), track_function_end() and
//   track_function_end(const std::any&)
//   is_capture_processor() const → false (tt-metal PR #42649: a background processor that does
//   not make GraphTracker::is_enabled() true, so ttnn graph capture is undisturbed)
//
// Traits adds to mapping.hpp's requirements: Buffer, CoreRange, CoreRangeSet, Program and
// FunctionArgs (the second parameter of track_function_start: std::span<TrackedArgument> from
// 2026, std::span<std::any> before).
#pragma once

#include <any>
#include <cstdint>
#include <string_view>

#include "ttmem_tt_metal/mapping.hpp"

namespace ttmem::tt_metal {

// NOLINTBEGIN(readability-identifier-naming): names and signatures are tt-metal's.
template <class Base, class Traits, class Sink = ClientSink>
class GraphProcessor : public Base {
 public:
  using Device = typename Traits::Device;
  using Buffer = typename Traits::Buffer;
  using CoreRange = typename Traits::CoreRange;
  using CoreRangeSet = typename Traits::CoreRangeSet;
  using Program = typename Traits::Program;
  using FunctionArgs = typename Traits::FunctionArgs;

  explicit GraphProcessor(Mapper<Traits, Sink>& mapper) : mapper_(mapper) {}

  bool is_capture_processor() const { return false; }

  void track_allocate(const Buffer* buffer) { mapper_.buffer_allocated(buffer); }
  void track_deallocate(Buffer* buffer) { mapper_.buffer_deallocated(buffer); }

  void track_allocate_cb(const CoreRange& range, uint64_t addr, uint64_t size) {
    mapper_.cb_allocated(range, addr, size, CbPlacement::kUnknown, nullptr);
  }
  void track_allocate_cb(const CoreRangeSet& ranges, uint64_t addr, uint64_t size) {
    mapper_.cb_allocated(ranges, addr, size, CbPlacement::kUnknown, nullptr);
  }
  void track_allocate_cb(const CoreRangeSet& ranges, uint64_t addr, uint64_t size,
                         bool is_globally_allocated) {
    mapper_.cb_allocated(ranges, addr, size, placement(is_globally_allocated), nullptr);
  }
  void track_allocate_cb(const CoreRangeSet& ranges, uint64_t addr, uint64_t size,
                         bool is_globally_allocated, const Device* device) {
    mapper_.cb_allocated(ranges, addr, size, placement(is_globally_allocated), device);
  }
  void track_allocate_dataflow_buffer(const CoreRangeSet& ranges, uint64_t addr, uint64_t size,
                                      bool borrows_memory, const Device* device) {
    mapper_.dataflow_buffer_allocated(ranges, addr, size, borrows_memory, device);
  }
  void track_allocate_scratchpad(const CoreRangeSet& ranges, uint64_t addr, uint64_t size,
                                 const Device* device) {
    mapper_.scratch_allocated(ranges, addr, size, device);
  }
  void track_deallocate_cb(const Device* device) { mapper_.cb_deallocated(device); }
  void track_deallocate_cb() { mapper_.cb_deallocated(nullptr); }

  void track_program(Program* program) { mapper_.program(program, nullptr); }
  void track_program(Program* program, const Device* device) { mapper_.program(program, device); }

  void track_function_start(std::string_view name, FunctionArgs /*args*/) {
    mapper_.function_start(name);
  }
  void track_function_end() { mapper_.function_end(); }
  void track_function_end(const std::any& /*outputs*/) { mapper_.function_end(); }

 private:
  static CbPlacement placement(bool global) {
    return global ? CbPlacement::kGlobal : CbPlacement::kLocal;
  }

  Mapper<Traits, Sink>& mapper_;
};
// NOLINTEND(readability-identifier-naming)

}  // namespace ttmem::tt_metal
