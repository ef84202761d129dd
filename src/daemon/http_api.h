// ttmemd's HTTP API: read-only JSON under /api/v1/ and Prometheus text at /metrics.
//
// The endpoints know nothing of sockets: answer_request() takes a parsed request and returns an
// answer, and ttmemd's HTTP server (http_server.h) carries them. It serves on a thread of its
// own, which never touches the collector: the event loop publishes an immutable Published value
// (copy-on-publish) through SnapshotBoard, and a request takes a shared_ptr to the current one
// for as long as its answer is being sent. The history store has its own lock.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "collector/snapshot.h"
#include "daemon/history.h"
#include "daemon/http_message.h"
#include "daemon/metrics.h"

namespace ttmem::daemon {

// Everything a request may read, as of one refresh of the event loop.
struct Published {
  collector::Snapshot snapshot;  // segments and legacy connections merged
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

struct ApiReply {
  int status = 200;
  std::string body;  // JSON: the answer, or {"error": what to do}
};

// Answers GET `path` (an endpoint under /api/v1/) with `params`, exactly as the server does:
// every parameter is validated here, so this is the whole of what a query string can reach.
// nullopt when `path` is not one of these endpoints.
std::optional<ApiReply> answer_api(const std::string& path, const Published& published,
                                   const HistoryStore& history, const ApiParams& params);

// The long lists (/api/v1/buffers, /api/v1/leaks) being sent at once. Each holds a copy of the
// snapshot it began from (for 200,000 buffers about 30 MiB) until its client has taken all of
// it, so their number bounds what slow readers can hold; a list asked for beyond it is
// answered 503.
class ListSlots {
 public:
  static constexpr size_t kMaxListsAtOnce = 8;
  // A slot, held until the returned value is destroyed; nullptr when all are taken.
  std::shared_ptr<const void> take();

  // A copy of `pub`'s snapshot, made on the calling thread and shared by every list being sent
  // from the same publication. Lists hold this copy instead of the publication: publications
  // are allocated by the event loop, and holding them for the seconds a list takes grew its
  // heap, which later snapshots, scattered over it, kept resident (four concurrent
  // 200,000-buffer lists left up to 55 MiB behind). Call from the HTTP server's thread only.
  std::shared_ptr<const collector::Snapshot> snapshot_copy(
      const std::shared_ptr<const Published>& pub);

 private:
  std::shared_ptr<std::atomic<size_t>> used_ = std::make_shared<std::atomic<size_t>>(0);
  std::weak_ptr<const Published> copied_from_;
  std::weak_ptr<const collector::Snapshot> copy_;
};

// Answers one request as ttmemd does: the token (401), the method (405: read-only) and a body
// (413) are checked first, and each such refusal closes the connection; then /metrics, the
// endpoints under /api/v1/ (the long lists streamed), or a JSON 404. HEAD is answered as GET
// (the server leaves the body out). board and history must outlive every answer's streaming.
HttpResponse answer_request(const HttpRequest& req, const SnapshotBoard& board,
                            const HistoryStore& history, const ApiOptions& options,
                            ListSlots& lists);

}  // namespace ttmem::daemon
