#include "daemon/http_api.h"

#include <fmt/format.h>
#include <malloc.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <set>
#include <stdexcept>

#include "collector/json.h"
#include "collector/query.h"
#include "common/format.h"
#include "common/kinds.h"

namespace ttmem::daemon {

using collector::BufferFilter;
using collector::buffers_json;
using collector::BufferSelection;
using collector::BufferSort;
using collector::BufferView;
using collector::DeviceView;
using collector::find_device;
using collector::find_kind;
using collector::has_process;
using collector::LeakList;
using collector::LeakRecord;
using collector::parse_sort;
using collector::leaks_json;
using collector::programs_json;
using collector::select_buffers;
using collector::select_programs;
using collector::Snapshot;
using collector::status_json;
using collector::to_json;
using common::format_chip_id;
using common::kind_name;

namespace {

using nlohmann::json;

// A rejected request: status and a message saying what to do.
struct BadRequest {
  int status;
  std::string message;
};

// Text in a reply can come from a request (an echoed parameter) or a tracked process (its
// command line): bytes that are not UTF-8 become U+FFFD instead of making dump() throw.
std::string json_body(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

HttpResponse reply_error(int status, const std::string& message) {
  HttpResponse res;
  res.status = status;
  res.body = json_body({{"error", message}});
  return res;
}

// Rejects parameters the endpoint does not know, so a typo is an error and not a silent no-op.
void check_params(const ApiParams& params, std::initializer_list<const char*> allowed) {
  std::set<std::string> ok(allowed.begin(), allowed.end());
  for (const auto& [name, value] : params) {
    if (ok.count(name)) continue;
    std::string list;
    for (const auto& a : ok) list += (list.empty() ? "" : ", ") + a;
    throw BadRequest{400, fmt::format("unknown parameter '{}'; this endpoint accepts: {}", name,
                                      list.empty() ? "none" : list)};
  }
  for (const auto& name : ok) {
    if (params.count(name) > 1) {
      throw BadRequest{400, fmt::format("parameter '{}' given more than once", name)};
    }
  }
}

std::optional<std::string> param(const ApiParams& params, const char* name) {
  auto it = params.find(name);
  if (it == params.end()) return std::nullopt;
  return it->second;
}

// A decimal integer in [0, max]; anything else is a 400 naming the parameter.
uint64_t parse_uint(const std::string& name, const std::string& text, uint64_t max) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v > max) {
    throw BadRequest{400, fmt::format("parameter '{}' must be a whole number from 0 to {} (got "
                                      "'{}')",
                                      name, max, text.substr(0, 64))};
  }
  return v;
}

uint64_t device_param(const Snapshot& s, const std::string& text) {
  uint32_t id = uint32_t(parse_uint("device", text, protocol::kMaxDevices * 1024ull));
  std::string error;
  auto chip = find_device(s, id, &error);
  if (!chip) throw BadRequest{400, error + " (GET /api/v1/devices lists them)"};
  return *chip;
}

uint32_t kind_param(const std::string& text) {
  std::string error;
  auto kind = find_kind(text.substr(0, 64), &error);
  if (!kind) throw BadRequest{400, error};
  return *kind;
}

json history_json(const Snapshot& s, const HistoryStore& history, const ApiParams& req) {
  check_params(req, {"device", "kind", "seconds"});
  std::optional<uint64_t> chip;
  std::optional<uint32_t> kind;
  if (auto d = param(req, "device")) chip = device_param(s, *d);
  if (auto k = param(req, "kind")) kind = kind_param(*k);
  uint64_t since = 0;
  if (auto secs = param(req, "seconds")) {
    uint64_t window = parse_uint("seconds", *secs, 10ull * 365 * 86400);
    uint64_t now = s.taken_realtime_ns;
    since = now > window * 1'000'000'000 ? now - window * 1'000'000'000 : 0;
  }
  std::map<uint64_t, const DeviceView*> devices;
  for (const auto& d : s.devices) devices[d.chip_id] = &d;
  json series = json::array();
  for (const auto& [c, k] : history.series()) {
    if ((chip && c != *chip) || (kind && k != *kind)) continue;
    json points = json::array();
    for (const auto& p : history.query(c, k, since)) {
      points.push_back({p.realtime_ns, p.requested, p.reserved, p.buffers});
    }
    auto d = devices.find(c);
    series.push_back(
        {{"chip_id", format_chip_id(c)},
         {"logical_ids", d != devices.end() ? d->second->logical_ids : std::vector<uint32_t>{}},
         {"kind", kind_name(k)},
         {"points", points}});
  }
  return {{"resolution_ms", history.options().resolution_ms},
          {"retention_s", history.options().retention_s},
          {"columns", {"realtime_ns", "requested_bytes", "reserved_bytes", "buffers"}},
          {"series", series}};
}

// The filter of /api/v1/buffers and /api/v1/programs; `kind` only where listed in `allowed`.
BufferFilter buffer_filter(const Snapshot& s, const ApiParams& req,
                           std::initializer_list<const char*> allowed) {
  check_params(req, allowed);
  BufferFilter f;
  if (auto d = param(req, "device")) f.chip_id = device_param(s, *d);
  if (auto k = param(req, "kind")) f.kind = kind_param(*k);
  if (auto p = param(req, "pid")) {
    f.pid = pid_t(parse_uint("pid", *p, 1u << 30));
    std::string error;
    if (!has_process(s, *f.pid, &error)) throw BadRequest{400, error};
  }
  if (auto sort = param(req, "sort")) {
    std::string error;
    auto parsed = parse_sort(*sort, &error);
    if (!parsed) throw BadRequest{400, "parameter 'sort': " + error};
    f.sort = *parsed;
  }
  if (auto l = param(req, "limit")) f.limit = size_t(parse_uint("limit", *l, 1u << 24));
  return f;
}

const std::initializer_list<const char*> kBufferParams = {"device", "kind", "pid", "sort",
                                                          "limit"};

BufferSelection buffers_selection(const Snapshot& s, const ApiParams& req) {
  return select_buffers(s, buffer_filter(s, req, kBufferParams));
}

// For a publication of aggregates only, the snapshot of now with its buffers listed, which the
// event loop builds on request (Published::list_buffers); null when the publication's own
// snapshot lists them.
std::shared_ptr<const Snapshot> listing_of(const Published& p) {
  if (!p.list_buffers) return nullptr;
  auto listed = p.list_buffers();
  if (!listed) {
    throw BadRequest{503, "ttmemd could not list its buffers now (it is stopping, or busy for "
                          "seconds); ask again in a moment"};
  }
  return listed;
}

struct ApiEndpoint {
  const char* path;
  json (*answer)(const Published& p, const HistoryStore& history, const ApiParams& params);
  // A list as long as the tracked state: the server sends it a chunk at a time (stream_list)
  // rather than as one document built whole.
  bool streamed = false;
};

const ApiEndpoint kEndpoints[] = {
    {"/api/v1/status",
     [](const Published& p, const HistoryStore&, const ApiParams& params) {
       // fresh=1: answer_request() had the event loop refresh first (Published::refresh_now).
       check_params(params, {"fresh"});
       if (auto fresh = param(params, "fresh")) parse_uint("fresh", *fresh, 1);
       return status_json(p.snapshot);
     }},
    {"/api/v1/devices",
     [](const Published& p, const HistoryStore&, const ApiParams& params) {
       check_params(params, {});
       json arr = json::array();
       for (const auto& d : p.snapshot.devices) arr.push_back(to_json(d));
       return json{{"devices", arr}};
     }},
    {"/api/v1/processes",
     [](const Published& p, const HistoryStore&, const ApiParams& params) {
       check_params(params, {});
       json arr = json::array();
       for (const auto& x : p.snapshot.processes) arr.push_back(to_json(x));
       return json{{"processes", arr}};
     }},
    {"/api/v1/buffers",
     [](const Published& p, const HistoryStore&, const ApiParams& params) {
       return buffers_json(buffers_selection(p.snapshot, params));
     },
     /*streamed=*/true},
    {"/api/v1/programs",
     [](const Published& p, const HistoryStore&, const ApiParams& params) {
       const auto listed = listing_of(p);
       const Snapshot& s = listed ? *listed : p.snapshot;
       return programs_json(
           select_programs(s, buffer_filter(s, params, {"device", "pid", "sort", "limit"})));
     }},
    {"/api/v1/leaks",
     [](const Published& p, const HistoryStore&, const ApiParams& params) {
       check_params(params, {});
       return leaks_json(p.snapshot.leaks);
     },
     /*streamed=*/true},
    {"/api/v1/legacy",
     [](const Published& p, const HistoryStore&, const ApiParams& params) {
       check_params(params, {});
       if (p.legacy.is_null()) {
         throw BadRequest{404, "this ttmemd has no legacy socket: start it with --legacy"};
       }
       return p.legacy;
     }},
    {"/api/v1/history",
     [](const Published& p, const HistoryStore& history, const ApiParams& params) {
       return history_json(p.snapshot, history, params);
     }},
};

// Items a streamed list builds per piece: a few hundred KiB of JSON.
constexpr size_t kItemsPerPiece = 1000;

// A streamed list's items [next, last), what follows them, and what the iterators point into.
template <class It>
struct ListRows {
  It next, last;
  std::string tail;
  std::shared_ptr<const void> keep;
};

// An answer that sends `head`, the items select_rows() returns as JSON separated by commas, then
// their tail, a piece at a time as the client takes them: the text is the one the whole document
// would dump to, but only one piece is ever held. Built whole, four concurrent /api/v1/buffers
// answers over 200,000 buffers took ttmemd to 3.5 GB, and malloc kept it.
//
// The rows are selected when the first piece is built, not when the request is answered (a sort
// of 200,000 buffers takes ~100 ms), so that requests that arrive together take the same
// publication.
template <class SelectRows, class ItemJson>
HttpResponse stream_list(std::string head, SelectRows select_rows, ItemJson item_json) {
  using Rows = decltype(select_rows());
  struct Progress {
    Progress(std::string text_before, SelectRows select)
        : head(std::move(text_before)), select_rows(std::move(select)) {}
    std::string head;
    std::optional<SelectRows> select_rows;  // holds the publication until the rows are taken
    std::optional<Rows> rows;
    bool first = true;
    // Ended, sent or abandoned: the publication it held may be the last reference to one, and
    // malloc keeps freed memory; give it back, so a burst of large answers does not stay in
    // ttmemd's resident memory.
    ~Progress() {
      rows.reset();
      select_rows.reset();
      ::malloc_trim(0);
    }
  };
  auto progress = std::make_shared<Progress>(std::move(head), std::move(select_rows));
  HttpResponse res;
  res.next_piece = [progress, item_json](std::string& piece) {
    Progress& p = *progress;
    if (!p.rows) {
      p.rows.emplace((*p.select_rows)());
      p.select_rows.reset();
    }
    Rows& r = *p.rows;
    piece += std::exchange(p.head, {});
    for (size_t n = 0; n < kItemsPerPiece && r.next != r.last; ++n, ++r.next) {
      if (!std::exchange(p.first, false)) piece += ',';
      piece += json_body(item_json(*r.next));
    }
    if (r.next != r.last) return true;
    piece += r.tail;
    return false;
  };
  return res;
}

// `slot` (ListSlots) is held until the answer is sent or abandoned. Parameters are checked here,
// so a bad one is still a 400 before anything is sent. The rows come from the snapshot copy of
// ListSlots::snapshot_copy(), and the publication is let go once the first piece is built.
HttpResponse stream_endpoint(const std::string& path, std::shared_ptr<const Published> pub,
                             const ApiParams& params, std::shared_ptr<const void> slot,
                             ListSlots& lists) {
  if (path == "/api/v1/leaks") {
    check_params(params, {});
    return stream_list(
        R"({"leaks":[)",
        [pub, slot] {
          // A LeakList shares its records (files the collector loaded): a copy is cheap.
          auto leaks = std::make_shared<const LeakList>(pub->snapshot.leaks);
          return ListRows<LeakList::const_iterator>{
              leaks->begin(), leaks->end(), "]}",
              std::make_shared<std::pair<std::shared_ptr<const LeakList>,
                                         std::shared_ptr<const void>>>(leaks, slot)};
        },
        [](const LeakRecord& l) { return to_json(l); });
  }
  BufferFilter filter = buffer_filter(pub->snapshot, params, kBufferParams);
  // A publication of aggregates only: its buffers are listed now, so a failure is still a 503.
  std::shared_ptr<const Snapshot> listed = listing_of(*pub);
  return stream_list(
      R"({"buffers":[)",
      [pub, listed, slot, filter, &lists] {
        struct Selected {
          std::shared_ptr<const Snapshot> snapshot;
          BufferSelection selection;
          std::shared_ptr<const void> slot;
        };
        auto snapshot = listed ? listed : lists.snapshot_copy(pub);
        auto selected = std::make_shared<Selected>(
            Selected{snapshot, select_buffers(*snapshot, filter), slot});
        const BufferSelection& rows = selected->selection;
        return ListRows<decltype(rows.rows.cbegin())>{
            rows.rows.cbegin(), rows.rows.cend(), fmt::format(R"(],"total":{}}})", rows.total),
            selected};
      },
      [](const BufferView* b) { return to_json(*b); });
}

// Whether `got` is the Authorization header a client with `token` sends, compared in constant
// time: the time taken does not reveal how much of the token matched.
bool authorized(const std::string* got, const std::string& token) {
  const std::string want = "Bearer " + token;
  const std::string sent = got ? *got : std::string();
  unsigned diff = sent.size() != want.size();
  for (size_t i = 0; i < want.size(); ++i) {
    diff |= unsigned(want[i] ^ (i < sent.size() ? sent[i] : 0));
  }
  return diff == 0;
}

// Checked as soon as the request head is in, before anything else: a request with a body is
// refused and the body never read (a 256 MiB POST was read whole before its 401 or 405, and took
// ttmemd to 271 MB). The connection closes after the answer, so the unread body is never taken
// for the next request.
std::optional<HttpResponse> refusal(const HttpRequest& req, const std::string& token) {
  auto refuse = [](int status, const std::string& message) {
    HttpResponse res = reply_error(status, message);
    res.close = true;
    return res;
  };
  if (!token.empty() && !authorized(req.header("Authorization"), token)) {
    HttpResponse res =
        refuse(401, "this ttmemd needs a token: send 'Authorization: Bearer <token>' (ttmem: "
                    "--token-file or TTMEM_TOKEN; Prometheus: authorization.credentials_file)");
    res.headers.emplace_back("WWW-Authenticate", "Bearer");
    return res;
  }
  // Read-only: every other method is refused, on every path.
  if (req.method != "GET" && req.method != "HEAD") {
    HttpResponse res = refuse(405, "the ttmemd API is read-only: use GET");
    res.headers.emplace_back("Allow", "GET, HEAD");
    return res;
  }
  if (req.announces_body()) {
    return refuse(413, "the ttmemd API takes no request body: send GET without one");
  }
  return std::nullopt;
}

}  // namespace

std::optional<ApiReply> answer_api(const std::string& path, const Published& published,
                                   const HistoryStore& history, const ApiParams& params) {
  for (const ApiEndpoint& e : kEndpoints) {
    if (path != e.path) continue;
    try {
      return ApiReply{200, json_body(e.answer(published, history, params))};
    } catch (const BadRequest& bad) {
      return ApiReply{bad.status, json_body({{"error", bad.message}})};
    } catch (const std::exception& ex) {
      return ApiReply{500, json_body({{"error", std::string("internal error: ") + ex.what()}})};
    }
  }
  return std::nullopt;
}

EventLoopRequests::EventLoopRequests() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) {
    throw std::runtime_error(fmt::format("cannot create an eventfd: {}", std::strerror(errno)));
  }
}

EventLoopRequests::~EventLoopRequests() {
  close();
  ::close(fd_);
}

template <class Promise>
bool EventLoopRequests::enqueue(std::vector<std::shared_ptr<Promise>>& queue,
                                std::shared_ptr<Promise> answer) {
  {
    std::lock_guard lock(mu_);
    if (closed_) return false;
    queue.push_back(std::move(answer));
  }
  const uint64_t one = 1;
  return ::write(fd_, &one, sizeof one) == ssize_t(sizeof one);
}

std::shared_ptr<const Snapshot> EventLoopRequests::list_buffers(int timeout_ms) {
  auto answer = std::make_shared<Listed>();
  auto future = answer->get_future();
  if (!enqueue(lists_, std::move(answer))) return nullptr;
  if (future.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
    return nullptr;
  }
  return future.get();
}

bool EventLoopRequests::refresh(int timeout_ms) {
  auto answer = std::make_shared<Refreshed>();
  auto future = answer->get_future();
  if (!enqueue(refreshes_, std::move(answer))) return false;
  return future.wait_for(std::chrono::milliseconds(timeout_ms)) == std::future_status::ready &&
         future.get();
}

void EventLoopRequests::answer(const std::function<void()>& refresh,
                               const std::function<std::shared_ptr<const Snapshot>()>& list) {
  uint64_t count;
  while (::read(fd_, &count, sizeof count) > 0) {
  }
  std::vector<std::shared_ptr<Refreshed>> refreshes;
  std::vector<std::shared_ptr<Listed>> lists;
  {
    std::lock_guard lock(mu_);
    refreshes.swap(refreshes_);
    lists.swap(lists_);
  }
  if (!refreshes.empty()) {
    refresh();
    for (auto& r : refreshes) r->set_value(true);
  }
  if (!lists.empty()) {
    const auto listed = list();
    for (auto& l : lists) l->set_value(listed);
  }
}

void EventLoopRequests::close() {
  std::vector<std::shared_ptr<Refreshed>> refreshes;
  std::vector<std::shared_ptr<Listed>> lists;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    refreshes.swap(refreshes_);
    lists.swap(lists_);
  }
  for (auto& r : refreshes) r->set_value(false);
  for (auto& l : lists) l->set_value(nullptr);
}

const std::string& Published::status_body() const {
  std::call_once(status_once_, [this] { status_body_ = json_body(status_json(snapshot)); });
  return status_body_;
}

std::shared_ptr<const void> ListSlots::take() {
  if (used_->fetch_add(1) >= kMaxListsAtOnce) {
    used_->fetch_sub(1);
    return nullptr;
  }
  // The count outlives this ListSlots if an answer does.
  return std::shared_ptr<const void>(used_.get(),
                                     [used = used_](const void*) { used->fetch_sub(1); });
}

std::shared_ptr<const Snapshot> ListSlots::snapshot_copy(
    const std::shared_ptr<const Published>& pub) {
  auto copy = copy_.lock();
  if (!copy || copied_from_.lock() != pub) {
    copy = std::make_shared<const Snapshot>(pub->snapshot);
    copy_ = copy;
    copied_from_ = pub;
  }
  return copy;
}

HttpResponse answer_request(const HttpRequest& req, const SnapshotBoard& board,
                            const HistoryStore& history, const ApiOptions& options,
                            ListSlots& lists) {
  if (auto refused = refusal(req, options.token)) return std::move(*refused);
  auto pub = board.current();
  // What was allocated up to this request, not up to the last refresh: a refresh that applies
  // what changed costs little even at a million live buffers. A bad value is answered 400 by
  // the endpoint below.
  if (req.path == "/api/v1/status" && pub->refresh_now) {
    auto fresh = req.params.find("fresh");
    if (fresh != req.params.end() && fresh->second == "1" && pub->refresh_now()) {
      pub = board.current();
    }
  }
  if (req.path == "/api/v1/status") {
    // The shared body, unless the parameters are wrong: answer_api() then says how.
    auto fresh = req.params.find("fresh");
    const bool plain = req.params.empty() ||
                       (req.params.size() == 1 && fresh != req.params.end() &&
                        (fresh->second == "0" || fresh->second == "1"));
    if (plain) {
      HttpResponse res;
      res.body = pub->status_body();
      return res;
    }
  }
  if (req.path == "/metrics") {
    MetricsInput in{&pub->snapshot, &pub->totals, pub->legacy_connections,
                    pub->legacy_rejected_bytes,
                    pub->legacy.is_null() ? nullptr : &pub->legacy_kernel_bytes,
                    pub->refreshes, pub->refresh_cpu_ns};
    HttpResponse res;
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.body = render_metrics(in, options.metrics);
    return res;
  }
  // Every JSON endpoint: the current publication, answered by answer_api(), or streamed.
  for (const ApiEndpoint& e : kEndpoints) {
    if (req.path != e.path || !e.streamed) continue;
    auto slot = lists.take();
    if (!slot) {
      HttpResponse busy = reply_error(
          503, fmt::format("{} long lists are being sent already; ask again in a moment",
                           ListSlots::kMaxListsAtOnce));
      busy.headers.emplace_back("Retry-After", "1");
      return busy;
    }
    try {
      return stream_endpoint(req.path, std::move(pub), req.params, std::move(slot), lists);
    } catch (const BadRequest& bad) {
      return reply_error(bad.status, bad.message);
    }
  }
  if (auto reply = answer_api(req.path, *pub, history, req.params)) {
    HttpResponse res;
    res.status = reply->status;
    res.body = std::move(reply->body);
    return res;
  }
  return reply_error(404, fmt::format("no endpoint {}; try /api/v1/status, /api/v1/devices, "
                                      "/api/v1/processes, /api/v1/buffers, /api/v1/programs, "
                                      "/api/v1/leaks, /api/v1/legacy, /api/v1/history or /metrics",
                                      req.path.substr(0, 128)));
}

}  // namespace ttmem::daemon
