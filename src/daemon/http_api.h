// ttmemd's HTTP API: read-only JSON under /api/v1/ and Prometheus text at /metrics.
//
// cpp-httplib serves requests on its own threads. They never touch the collector: the event loop
// publishes an immutable Published value (copy-on-publish) through SnapshotBoard, and a handler
// takes a shared_ptr to the current one for the duration of one request. The history store has
// its own lock.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon/history.h"
#include "collector/snapshot.h"
#include "daemon/metrics.h"

namespace httplib {
class Server;
}

namespace ttmem::daemon {

// Everything a request may read, as of one refresh of the event loop.
struct Published {
  Snapshot snapshot;  // segments and legacy connections merged
  std::map<uint64_t, ChipTotals> totals;
  uint64_t legacy_connections = 0;
  uint64_t legacy_rejected_bytes = 0;
  nlohmann::json legacy;  // /api/v1/legacy (LegacyIngest::report()); null without legacy ingest
  std::map<uint32_t, uint64_t> legacy_kernel_bytes;  // by logical device, where not zero
};

class SnapshotBoard {
 public:
  void publish(std::shared_ptr<const Published> p) {
    std::lock_guard lock(mu_);
    current_ = std::move(p);
  }
  std::shared_ptr<const Published> current() const {
    std::lock_guard lock(mu_);
    return current_;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Published> current_ = std::make_shared<Published>();
};

struct ApiOptions {
  std::string token;  // non-empty: every request needs "Authorization: Bearer <token>"
  MetricsOptions metrics;
};

// A request's query parameters, decoded, in order (the same type as httplib::Params).
using ApiParams = std::multimap<std::string, std::string>;

struct ApiReply {
  int status = 200;
  std::string body;  // JSON: the answer, or {"error": what to do}
};

// Answers GET `path` (an endpoint under /api/v1/) with `params`, exactly as the server does:
// every parameter is validated here, so this is the whole of what a query string can reach.
// nullopt when `path` is not one of these endpoints.
std::optional<ApiReply> answer_api(const std::string& path, const Published& published,
                                   const HistoryStore& history, const ApiParams& params);

// Registers every route on `server`. board and history must outlive the server.
void install_routes(httplib::Server& server, const SnapshotBoard& board,
                    const HistoryStore& history, const ApiOptions& options);

}  // namespace ttmem::daemon
