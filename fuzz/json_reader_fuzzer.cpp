// Fuzz target: JsonDocument (collector/json_reader.h), the parser of whatever a host answering
// `ttmem --server` or `ttmem top` sends, and snapshot_from_json over what it accepts.
//
// Properties, against nlohmann::json as the reference on the same bytes (cut at the first NUL,
// where nlohmann stops reading and JsonDocument refuses):
//   - both accept, or both refuse;
//   - what both accept reads back as equal values;
//   - read as a status document, both DOMs give the same snapshot, or both refuse it.
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "collector/json.h"
#include "collector/json_reader.h"
#include "fuzz_support.h"

namespace {

using nlohmann::json;
using ttmem::collector::JsonDocument;
using ttmem::collector::JsonValue;

// The snapshot of `status` read as a ttmemd's status document (no buffers, no leak list), as
// JSON again; nothing when the reader refuses it.
template <class Json>
std::optional<std::string> status_of(const Json& status) {
  try {
    return ttmem::collector::status_json(
               ttmem::collector::snapshot_from_json(status, Json(), Json()))
        .dump();
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* text = reinterpret_cast<const char*>(data);
  const std::string input(text, strnlen(text, size));

  std::optional<json> reference;
  try {
    reference = json::parse(input);
  } catch (const json::exception&) {
  }
  std::optional<JsonDocument> doc;
  try {
    doc = JsonDocument::parse(input);
  } catch (const json::parse_error&) {
  }
  FUZZ_CHECK(doc.has_value() == reference.has_value());
  if (!doc) return 0;
  FUZZ_CHECK(ttmem::collector::to_nlohmann(doc->root()) == *reference);
  FUZZ_CHECK(status_of(doc->root()) == status_of(*reference));
  return 0;
}
