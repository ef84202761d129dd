// JSON forms of the collector's model, shared by `ttmem --json`, the daemon and the leak store.
// Sizes are integers in bytes; kinds are keyed by their names (DRAM, L1, ...).
#pragma once

#include <nlohmann/json.hpp>

#include "collector/model.h"
#include "collector/query.h"

namespace ttmem {

nlohmann::json to_json(const KindUsage& k);
nlohmann::json to_json(const DeviceView& d);
nlohmann::json to_json(const ProcessView& p);
nlohmann::json to_json(const BufferView& b);
nlohmann::json to_json(const LeakRecord& l);
nlohmann::json to_json(const TagUsage& t);
nlohmann::json to_json(const SegmentProblem& p);

// {"devices":[...],"processes":[...],"dropped_events":N,"problems":[...]} (no buffers or leaks).
nlohmann::json status_json(const Snapshot& s);

// {"total":N,"buffers":[...]}: `ttmem buffers --json` and GET /api/v1/buffers.
nlohmann::json buffers_json(const BufferSelection& selection);

// {"leaks":[...]}: `ttmem leaks --json` and GET /api/v1/leaks.
nlohmann::json leaks_json(const std::vector<LeakRecord>& leaks);

// Throws nlohmann::json::exception on a malformed record.
LeakRecord leak_from_json(const nlohmann::json& j);

}  // namespace ttmem
