// ttmemd's HTTP API: read-only JSON under /api/v1/ and Prometheus text at /metrics.
//
// The endpoints know nothing of sockets: answer_request() takes a parsed request and returns an
// answer, and ttmemd's HTTP server (http_server.h) carries them. It serves on a thread of its
// own, which never touches the collector: the event loop publishes an immutable Published value
// (copy-on-publish) through SnapshotBoard, and a request takes a shared_ptr to the current one
// for as long as its answer is being sent. The history store has its own lock.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>  // also std::once_flag
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "collector/snapshot.h"
#include "daemon/history.h"
#include "daemon/http_message.h"
#include "daemon/metrics.h"

namespace ttmem::daemon {

// Everything a request may read, as of one refresh of the event loop.
struct Published {
  // Segments and legacy connections merged. Its buffers are listed unless list_buffers is set.
  collector::Snapshot snapshot;
  // Set when the publication holds aggregates only (an incremental collector lists buffers
  // only when asked: at a million live buffers a list at every refresh would be most of the
  // daemon's CPU and twice its heap). Returns the snapshot of now with its buffers listed, or
  // nullptr when the event loop could not answer (stopping). Blocks the calling thread while
  // the event loop builds it.
  std::function<std::shared_ptr<const collector::Snapshot>()> list_buffers;
  // Makes the event loop refresh and publish now (the answer then reads SnapshotBoard again):
  // for `GET /api/v1/status?fresh=1`, which `ttmem status` sends to show what was allocated
  // up to the moment it asked. False when the event loop could not (stopping). Null in tests
  // that answer without an event loop.
  std::function<bool()> refresh_now;
  std::map<uint64_t, ChipTotals> totals;
  uint64_t legacy_connections = 0;
  uint64_t legacy_rejected_bytes = 0;
  nlohmann::json legacy;  // /api/v1/legacy (LegacyIngest::report()); null without legacy ingest
  std::map<uint32_t, uint64_t> legacy_kernel_bytes;  // by logical device, where not zero
  // The collector's refreshes so far and the thread CPU time they took (publishing excluded).
  uint64_t refreshes = 0;
  uint64_t refresh_cpu_ns = 0;

  // /api/v1/status's body, made by the first request that asks for it and shared by the rest:
  // clients that poll (dashboards, `ttmem top --server`) cost one status per publication, not
  // one each. At a million live buffers on 32 chips and 56 processes a status is ~170 KB of
  // JSON, a fraction of a millisecond to make.
  const std::string& status_body() const;
  mutable std::once_flag status_once_;  // status_body()'s, not to be touched otherwise
  mutable std::string status_body_;
};

// What the HTTP server's thread asks of the event loop, which alone reads the collector: a
// snapshot with its buffers listed (Published::list_buffers), or a refresh before an answer
// (Published::refresh_now).
class EventLoopRequests {
 public:
  EventLoopRequests();  // throws std::runtime_error when its eventfd cannot be made
  ~EventLoopRequests();
  EventLoopRequests(const EventLoopRequests&) = delete;
  EventLoopRequests& operator=(const EventLoopRequests&) = delete;

  // Readable while requests wait: the event loop polls it.
  int fd() const { return fd_; }
  // Any thread: the listed snapshot the event loop builds next; nullptr after timeout_ms or
  // once closed.
  std::shared_ptr<const collector::Snapshot> list_buffers(int timeout_ms);
  // Any thread: true once the event loop has refreshed and published after this call; false
  // after timeout_ms or once closed.
  bool refresh(int timeout_ms);
  // Event loop: refreshes once with refresh() if any refresh is waiting, then builds one listed
  // snapshot with list() if any list is, and answers every request waiting.
  void answer(const std::function<void()>& refresh,
              const std::function<std::shared_ptr<const collector::Snapshot>()>& list);
  // No more answers: every waiting and later request fails at once.
  void close();

 private:
  using Listed = std::promise<std::shared_ptr<const collector::Snapshot>>;
  using Refreshed = std::promise<bool>;
  // Queues `answer` unless closed, and wakes the event loop.
  template <class Promise>
  bool enqueue(std::vector<std::shared_ptr<Promise>>& queue, std::shared_ptr<Promise> answer);
  std::mutex mu_;
  std::vector<std::shared_ptr<Listed>> lists_;
  std::vector<std::shared_ptr<Refreshed>> refreshes_;
  bool closed_ = false;
  int fd_ = -1;
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
