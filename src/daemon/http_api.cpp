#include "daemon/http_api.h"

#include <fmt/format.h>
#include <httplib.h>
#include <malloc.h>

#include <charconv>
#include <set>

#include "collector/json.h"
#include "collector/query.h"
#include "common/kinds.h"

namespace ttmem::daemon {
namespace {

using nlohmann::json;

// Bounds on what a client can make the server hold (install_routes).
constexpr size_t kConnectionThreads = 64;          // connections served at once
constexpr time_t kIdleSeconds = 2;                 // a connection silent this long is closed
constexpr time_t kWriteSeconds = 10;               // a client that stops reading is dropped
constexpr size_t kMaxRequestBodyBytes = 64 << 10;  // GET has none; also bounds a chunked one

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

void reply_json(httplib::Response& res, const json& j, int status = 200) {
  res.status = status;
  res.set_content(json_body(j), "application/json");
}

void reply_error(httplib::Response& res, int status, const std::string& message) {
  reply_json(res, {{"error", message}}, status);
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
        {{"chip_id", c},
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
    if (*sort == "size") {
      f.sort = BufferSort::Size;
    } else if (*sort == "age") {
      f.sort = BufferSort::Age;
    } else {
      throw BadRequest{400, "parameter 'sort' must be 'size' or 'age'"};
    }
  }
  if (auto l = param(req, "limit")) f.limit = size_t(parse_uint("limit", *l, 1u << 24));
  return f;
}

BufferSelection buffers_selection(const Snapshot& s, const ApiParams& req) {
  return select_buffers(s, buffer_filter(s, req, {"device", "kind", "pid", "sort", "limit"}));
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
       check_params(params, {});
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
       const Snapshot& s = p.snapshot;
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

// Items a streamed list sends per chunk: a few hundred KiB of JSON.
constexpr size_t kItemsPerChunk = 1000;

// Sends `head`, the items [next, last) as JSON separated by commas, then `tail`, a chunk at a
// time: the text is the one the whole document would dump to, but only one chunk is ever held.
// Built whole, four concurrent /api/v1/buffers answers over 200,000 buffers took ttmemd to
// 3.5 GB, and malloc kept it. `keep` holds what the iterators point into.
template <class It, class ItemJson>
void stream_list(httplib::Response& res, std::string head, It next, It last, std::string tail,
                 ItemJson item_json, std::shared_ptr<const void> keep) {
  struct Progress {
    It next, last;
    std::string head, tail;
    bool first = true;
  };
  auto progress = std::make_shared<Progress>(Progress{next, last, std::move(head),
                                                      std::move(tail)});
  res.set_chunked_content_provider(
      "application/json",
      [progress, item_json, keep](size_t, httplib::DataSink& sink) {
        Progress& p = *progress;
        std::string chunk = std::exchange(p.head, {});
        for (size_t n = 0; n < kItemsPerChunk && p.next != p.last; ++n, ++p.next) {
          if (!std::exchange(p.first, false)) chunk += ',';
          chunk += json_body(item_json(*p.next));
        }
        const bool done = p.next == p.last;
        if (done) chunk += p.tail;
        if (!sink.write(chunk.data(), chunk.size())) return false;  // the client went away
        if (done) {
          sink.done();
          // The chunks were freed into this thread's malloc arena, which glibc keeps: give
          // them back, so a burst of large answers does not stay in ttmemd's resident memory.
          chunk = {};
          ::malloc_trim(0);
        }
        return true;
      });
}

void stream_endpoint(const std::string& path, std::shared_ptr<const Published> pub,
                     const ApiParams& params, httplib::Response& res) {
  if (path == "/api/v1/leaks") {
    check_params(params, {});
    const LeakList& leaks = pub->snapshot.leaks;
    stream_list(res, R"({"leaks":[)", leaks.begin(), leaks.end(), "]}",
                [](const LeakRecord& l) { return to_json(l); }, pub);
    return;
  }
  auto rows = std::make_shared<BufferSelection>(buffers_selection(pub->snapshot, params));
  stream_list(res, R"({"buffers":[)", rows->rows.cbegin(), rows->rows.cend(),
              fmt::format(R"(],"total":{}}})", rows->total),
              [](const BufferView* b) { return to_json(*b); },
              std::make_shared<std::pair<std::shared_ptr<const Published>,
                                         std::shared_ptr<BufferSelection>>>(pub, rows));
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

void install_routes(httplib::Server& server, const SnapshotBoard& board,
                    const HistoryStore& history, const ApiOptions& options) {
  // Resource bounds (docs/security.md#the-http-api). Each connection holds a pool thread while
  // it is open, so idle ones are closed after kIdleSeconds, and the pool is large enough that a
  // few dozen of them (32 once took /metrics past a 10 s scrape timeout with the default 8
  // threads) leave threads for /metrics and /api/v1/status.
  server.new_task_queue = [] { return new httplib::ThreadPool(kConnectionThreads); };
  server.set_read_timeout(kIdleSeconds, 0);
  server.set_keep_alive_timeout(kIdleSeconds);
  // One request per connection. A refused request's body is left unread (below), and on a
  // kept-alive connection cpp-httplib 0.11 would read it as the next request line, with no
  // length limit: 100 MiB of body became 130 MB of ttmemd. Scrapers and `ttmem --server`
  // reconnect per request anyway.
  server.set_keep_alive_max_count(1);
  server.set_write_timeout(kWriteSeconds, 0);
  server.set_payload_max_length(kMaxRequestBodyBytes);

  const std::string token = options.token;
  // Runs once the request line and headers are read and before any body is: a request with a
  // body is refused unread (a 256 MiB POST was read whole before its 401 or 405, and took ttmemd
  // to 271 MB). `Connection: close`, so the unread body is never taken for the next request.
  server.set_pre_routing_handler([token](const httplib::Request& req, httplib::Response& res) {
    auto refuse = [&](int status, const std::string& message) {
      res.set_header("Connection", "close");
      reply_error(res, status, message);
      return httplib::Server::HandlerResponse::Handled;
    };
    if (!token.empty()) {
      std::string want = "Bearer " + token;
      const std::string& got = req.get_header_value("Authorization");
      // Constant-time comparison: the time taken does not reveal how much of the token matched.
      unsigned diff = got.size() != want.size();
      for (size_t i = 0; i < want.size(); ++i)
        diff |= unsigned(want[i] ^ (i < got.size() ? got[i] : 0));
      if (diff != 0) {
        res.set_header("WWW-Authenticate", "Bearer");
        return refuse(401,
                      "this ttmemd needs a token: send 'Authorization: Bearer <token>' (ttmem: "
                      "--token-file or TTMEM_TOKEN; Prometheus: authorization.credentials_file)");
      }
    }
    // Read-only: every other method is refused, on every path.
    if (req.method != "GET" && req.method != "HEAD") {
      res.set_header("Allow", "GET, HEAD");
      return refuse(405, "the ttmemd API is read-only: use GET");
    }
    if (req.has_header("Transfer-Encoding") ||
        req.get_header_value<uint64_t>("Content-Length") > 0) {
      return refuse(413, "the ttmemd API takes no request body: send GET without one");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // Every JSON endpoint: the current publication, answered by answer_api(), or streamed.
  for (const ApiEndpoint& e : kEndpoints) {
    server.Get(e.path, [&board, &history, streamed = e.streamed](const httplib::Request& req,
                                                                  httplib::Response& res) {
      auto pub = board.current();
      if (streamed) {
        try {
          return stream_endpoint(req.path, std::move(pub), req.params, res);
        } catch (const BadRequest& bad) {
          return reply_error(res, bad.status, bad.message);
        }
      }
      ApiReply reply = *answer_api(req.path, *pub, history, req.params);
      res.status = reply.status;
      res.set_content(reply.body, "application/json");
    });
  }

  MetricsOptions metrics = options.metrics;
  server.Get("/metrics", [&board, metrics](const httplib::Request&, httplib::Response& res) {
    auto pub = board.current();
    MetricsInput in{&pub->snapshot, &pub->totals, pub->legacy_connections,
                    pub->legacy_rejected_bytes,
                    pub->legacy.is_null() ? nullptr : &pub->legacy_kernel_bytes};
    res.set_content(render_metrics(in, metrics), "text/plain; version=0.0.4; charset=utf-8");
  });

  // Every other path is a JSON 404 (other methods never get here: see the pre-routing handler).
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      reply_error(res, 404,
                  fmt::format("no endpoint {}; try /api/v1/status, /api/v1/devices, "
                              "/api/v1/processes, /api/v1/buffers, /api/v1/programs, "
                              "/api/v1/leaks, /api/v1/legacy, /api/v1/history or /metrics",
                              req.path.substr(0, 128)));
    }
  });
}

}  // namespace ttmem::daemon
