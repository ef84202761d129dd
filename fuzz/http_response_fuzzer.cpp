// Fuzz target: the CLI's HTTP response parser (`ttmem --server`), which reads whatever the host
// at that URL sends.
//
// Input: the bytes a server sent before closing the connection.
//
// Properties: the answer parses the same whether it arrives whole or in pieces (a reader parses
// again as bytes arrive); a complete answer has a status from 100 to 599 and a body no longer
// than what was received.
#include <string>
#include <string_view>

#include "cli/http_client.h"
#include "fuzz_support.h"

namespace {

using ttmem::cli::HttpResponse;
using ttmem::cli::parse_http_response;
using ttmem::cli::ParseState;

struct Outcome {
  ParseState state;
  HttpResponse response;
};

// Parses growing prefixes of `raw`, `step` bytes at a time, skipping ahead to what the parser
// says it needs, as http_get() does; then parses the whole at the end of the connection.
Outcome parse_in_pieces(std::string_view raw, size_t step) {
  Outcome out;
  std::string error;
  size_t wanted = 1;
  for (size_t n = step; n < raw.size(); n += step) {
    if (n < wanted) continue;
    out.state = parse_http_response(raw.substr(0, n), false, &out.response, &error, &wanted);
    if (out.state != ParseState::Incomplete) return out;
    FUZZ_CHECK(wanted > n);
  }
  out.state = parse_http_response(raw, true, &out.response, &error);
  FUZZ_CHECK(out.state != ParseState::Incomplete);
  FUZZ_CHECK(out.state == ParseState::Complete || !error.empty());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  Outcome whole = parse_in_pieces(raw, size + 1);
  if (whole.state == ParseState::Complete) {
    FUZZ_CHECK(whole.response.status >= 100 && whole.response.status <= 599);
    FUZZ_CHECK(whole.response.body.size() <= size);
  }
  for (size_t step : {size_t(1), size_t(7), size / 3 + 1}) {
    if (step == 1 && size > 4096) continue;  // a byte at a time is quadratic
    Outcome pieces = parse_in_pieces(raw, step);
    FUZZ_CHECK(pieces.state == whole.state);
    if (whole.state == ParseState::Complete) {
      FUZZ_CHECK(pieces.response.status == whole.response.status);
      FUZZ_CHECK(pieces.response.body == whole.response.body);
    }
  }
  return 0;
}
