// Programs and their statically allocated circular buffers (tt-metal's
// tt_metal/impl/program/program.cpp; docs/model.md, Sources).
//
// A program's CBs stack bottom-up from the L1 unreserved base, per core: a CB starts at the
// highest CB end so far on any core of its core-range set (rounded to the DRAM alignment), and
// raises the region end of every core it covers. Before launch tt-metal checks, per core range:
//   1. the CB region end is within L1                (else "... beyond max L1 size ...");
//   2. the lowest live L1 buffer is not below it     (else "... clash with L1 buffers ...").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/device_spec.h"
#include "model/types.h"

namespace ttmem::model {

struct CircularBufferConfig {
  CoreRangeSet cores;
  uint64_t size = 0;  // bytes on every core of `cores`
};

class Program {
 public:
  // Takes the next process-wide program id, as tt-metal numbers its programs, unless `id` is
  // given (to match the id a user quotes from a real run's error).
  explicit Program(std::string name = {}, std::optional<uint64_t> id = std::nullopt);

  uint64_t id() const { return id_; }
  const std::string& name() const { return name_; }

  Program& add_circular_buffer(CoreRangeSet cores, uint64_t size);
  const std::vector<CircularBufferConfig>& circular_buffers() const { return cbs_; }

 private:
  uint64_t id_;
  std::string name_;
  std::vector<CircularBufferConfig> cbs_;
};

struct PlacedCircularBuffer {
  CoreRangeSet cores;
  uint64_t address = 0;
  uint64_t size = 0;
};

struct CbRegion {
  CoreRange range;   // as declared by a CB of the program
  uint64_t end = 0;  // highest CB end on any core of the range
};

struct CbLayout {
  std::vector<PlacedCircularBuffer> cbs;
  std::vector<CbRegion> regions;  // each distinct core range, in declaration order
  uint64_t region_end() const;    // over all ranges; the unreserved base when there are no CBs
};

// Places the program's CBs; throws ModelError (InvalidRequest) for cores outside the grid.
CbLayout place_circular_buffers(const Program& program, const ChipGeometry& geometry);

// The two checks tt-metal makes before launch; throws ModelError (CbBeyondL1 or CbClash).
void validate_circular_buffer_region(const Program& program, const CbLayout& layout,
                                     const ChipGeometry& geometry,
                                     std::optional<uint64_t> lowest_l1_address);

}  // namespace ttmem::model
