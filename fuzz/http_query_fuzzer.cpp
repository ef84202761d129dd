// Fuzz target: ttmemd's HTTP API parameters. A request target is split and decoded by
// parse_target(), as ttmemd's HTTP server does, then answered by answer_api(), where every endpoint validates its
// parameters, against a small daemon state with two devices, two processes, buffers and history.
//
// Input: a request target, e.g. "/api/v1/buffers?device=0&kind=l1&sort=age&limit=3".
//
// Properties: an API endpoint answers 200 or 400, never 500 (an exception that escaped the
// validation), and its body is always JSON.
#include <nlohmann/json.hpp>
#include <string>

#include "common/kinds.h"
#include "daemon/http_api.h"
#include "daemon/http_message.h"
#include "fuzz_support.h"

namespace {

using ttmem::daemon::Published;

constexpr uint64_t kSecond = 1'000'000'000;

ttmem::collector::Snapshot make_snapshot(uint64_t now_ns) {
  ttmem::collector::Snapshot s;
  s.taken_realtime_ns = now_ns;
  s.taken_monotonic_ns = now_ns;
  for (uint32_t id : {0u, 1u}) {
    ttmem::collector::DeviceView d;
    d.chip_id = 0x1000 + id;
    d.logical_ids = {id};
    d.board = "n300";
    for (uint32_t k = 0; k < ttmem::collector::kNumKinds; ++k) {
      d.kinds[k].capacity = 1ull << 30;
      d.kinds[k].requested = (k + 1) * 4096 * (id + 1);
      d.kinds[k].reserved = d.kinds[k].requested;
      d.kinds[k].count = k + 1;
    }
    s.devices.push_back(d);
  }
  for (pid_t pid : {100, 200}) {
    ttmem::collector::ProcessView p;
    p.pid = pid;
    p.command = "python model.py";
    s.processes.push_back(p);
    for (uint32_t k = 0; k < ttmem::collector::kNumKinds; ++k) {
      ttmem::collector::BufferView b;
      b.pid = pid;
      b.device = k % 2;
      b.chip_id = 0x1000 + b.device;
      b.kind = k;
      b.buffer_id = uint64_t(pid) * 16 + k;
      b.size = b.reserved = 4096 * (k + 1);
      b.time_ns = now_ns - k * kSecond;
      b.tag = "matmul";
      s.buffers.push_back(b);
    }
  }
  ttmem::collector::LeakRecord leak;
  leak.pid = 300;
  leak.command = "crashed.py";
  leak.size = leak.reserved = 8192;
  s.leaks = ttmem::collector::LeakList({leak});
  return s;
}

struct State {
  Published published;
  ttmem::daemon::HistoryStore history{ttmem::daemon::HistoryOptions{1000, 3600}};
  State() {
    // Three samples a second apart, so a "seconds" window selects some of them.
    for (uint64_t t = 1; t <= 3; ++t) history.sample(make_snapshot(1000 * kSecond + t * kSecond));
    published.snapshot = make_snapshot(1003 * kSecond);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const State state;
  std::string target(reinterpret_cast<const char*>(data), size);
  // As ttmemd's HTTP server: the path is percent-decoded, the query split into decoded
  // name=value pairs.
  std::string path;
  ttmem::daemon::ApiParams params;
  ttmem::daemon::parse_target(target, &path, &params);
  auto reply = ttmem::daemon::answer_api(path, state.published, state.history, params);
  if (!reply) return 0;
  // 404 only from /api/v1/legacy, on a ttmemd with no legacy socket (as here).
  FUZZ_CHECK(reply->status == 200 || reply->status == 400 ||
             (reply->status == 404 && path == "/api/v1/legacy"));
  FUZZ_CHECK(nlohmann::json::accept(reply->body));
  return 0;
}
