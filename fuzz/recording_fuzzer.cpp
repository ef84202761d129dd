// Fuzz target: the recording reader (read_recording) and everything `ttmem export` does with
// what it returns (state_at and the four exporters), over arbitrary files.
//
// Input: the recording file, byte for byte.
#include <nlohmann/json.hpp>
#include <string>

#include "collector/recording.h"
#include "fuzz_support.h"

namespace {

namespace pr = ttmem::protocol;
using nlohmann::json;

void check_state(const ttmem::collector::Recording& r, uint64_t time_ns) {
  for (const ttmem::collector::RecordedBuffer& b : ttmem::collector::state_at(r, time_ns)) {
    FUZZ_CHECK(b.process < r.processes.size());
    FUZZ_CHECK(b.device < pr::kMaxDevices);
    FUZZ_CHECK(b.record.kind < pr::kNumKinds);
    FUZZ_CHECK(b.record.tag < r.strings.size());
  }
}

// Every JSON export must be JSON whatever text the recording carried.
void check_json(const std::string& text) {
  FUZZ_CHECK(json::accept(text));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ttmem::fuzz::ScratchFile file("input.ttrec");
  file.write(data, size);
  std::string error;
  auto r = ttmem::collector::read_recording(file.path(), &error);
  if (!r) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  for (const auto& e : r->events) {
    FUZZ_CHECK(e.process < r->processes.size() && e.device < pr::kMaxDevices);
    FUZZ_CHECK(e.event.kind < pr::kNumKinds && e.event.tag < r->strings.size());
  }
  for (size_t i = 1; i < r->events.size(); ++i) {
    FUZZ_CHECK(r->events[i - 1].time_ns <= r->events[i].time_ns);
  }
  // Moments that matter to a replay: before everything, each checkpoint, and the end.
  check_state(*r, 0);
  for (const auto& cp : r->checkpoints) check_state(*r, cp.time_ns);
  check_state(*r, r->end_ns);

  check_json(ttmem::collector::export_perfetto(*r));
  check_json(ttmem::collector::export_json(*r));
  std::string csv = ttmem::collector::export_csv(*r);
  FUZZ_CHECK(csv.rfind("t_ns,", 0) == 0);
  check_json(ttmem::collector::export_state_json(*r, 0));
  check_json(ttmem::collector::export_state_json(*r, r->end_ns / 2));
  return 0;
}
