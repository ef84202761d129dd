// JSON forms of the collector's snapshot, shared by `ttmem --json`, the daemon and the leak store.
// Sizes are integers in bytes; kinds are keyed by their names (DRAM, L1, ...).
#pragma once

#include <nlohmann/json.hpp>

#include "collector/json_reader.h"
#include "collector/query.h"
#include "collector/snapshot.h"

namespace ttmem::collector {

nlohmann::json to_json(const KindUsage& k);
nlohmann::json to_json(const TtMetalChipCounters& c);
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

// {"programs":[...]}: one row per program CB set; `ttmem buffers --programs --json` and
// GET /api/v1/programs.
nlohmann::json to_json(const ProgramCbSet& p);
nlohmann::json programs_json(const std::vector<ProgramCbSet>& programs);

// {"leaks":[...]}: `ttmem leaks --json` and GET /api/v1/leaks.
nlohmann::json leaks_json(const LeakList& leaks);

// The inverses below check everything: a missing field, a wrong type, a number out of its
// field's range or an unknown name throws nlohmann::json::exception saying which. They take
// untrusted input (a leak file, a remote ttmemd's answer); nothing in it can make them crash.
// Each reads either DOM: nlohmann's, or the JsonValue of a JsonDocument (json_reader.h), which
// parses a ttmemd's answers several times faster.
LeakRecord leak_from_json(const nlohmann::json& j);
LeakRecord leak_from_json(const JsonValue& j);

// Inverse of status_json, buffers_json and leaks_json: the Snapshot a ttmemd serves, so
// `ttmem --server` prints through the same code as the local commands. `buffers` may be null
// (no buffer list); its rows keep the order they came in. Leaks come from `leaks`, not from
// status's leaked_buffers count; `leaks` may be null (the count alone, no records). Not carried
// by the JSON, so left zero: process start times of buffers, per-process device totals, tags.
Snapshot snapshot_from_json(const nlohmann::json& status, const nlohmann::json& buffers,
                            const nlohmann::json& leaks);
Snapshot snapshot_from_json(const JsonValue& status, const JsonValue& buffers,
                            const JsonValue& leaks);

}  // namespace ttmem::collector
