#include "cli/top/source.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "cli/cli_util.h"
#include "cli/remote.h"
#include "collector/collector.h"
#include "collector/daemon_file.h"
#include "common/clock.h"
#include "common/proc.h"
#include "protocol/legacy.h"

namespace ttmem::top {

using collector::Collector;
using collector::CollectorOptions;
using collector::Snapshot;
using common::monotonic_ns;

namespace {

class LocalSource : public SnapshotSource {
 public:
  explicit LocalSource(const cli::GlobalOptions& global) {
    try {
      CollectorOptions options = cli::collector_options(global);
      options.leak_records = false;  // top shows only how many buffers leaked
      options.incremental = true;    // a refresh costs what changed since the last one
      options.list_buffers = false;  // until a view shows them (set_list_buffers)
      collector_ = std::make_unique<Collector>(options);
    } catch (const std::runtime_error& e) {
      throw cli::CliError(e.what());
    }
  }
  void refresh() override { collector_->refresh(); }
  void wait(int timeout_ms) override { collector_->wait(timeout_ms); }
  const Snapshot& snapshot() const override { return collector_->snapshot(); }
  void set_list_buffers(bool list) override { collector_->set_list_buffers(list); }
  bool lists_buffers() const override { return collector_->lists_buffers(); }

 private:
  std::unique_ptr<Collector> collector_;
};

class RemoteSource : public SnapshotSource {
 public:
  explicit RemoteSource(cli::GlobalOptions global) : global_(std::move(global)) {}
  void refresh() override {
    // Leaks only counted.
    snapshot_ = cli::fetch_snapshot(global_, list_buffers_, /*leak_records=*/false);
  }
  void wait(int timeout_ms) override {
    // A signal (q, Ctrl-C) ends the sleep early: poll() is not restarted.
    ::poll(nullptr, 0, timeout_ms);
    refresh();
  }
  const Snapshot& snapshot() const override { return snapshot_; }
  void set_list_buffers(bool list) override { list_buffers_ = list; }
  bool lists_buffers() const override { return list_buffers_; }

 private:
  cli::GlobalOptions global_;
  Snapshot snapshot_;
  bool list_buffers_ = false;
};

// A directory a ttmemd serves: the overview from that daemon (GET /api/v1/status, as it last
// published it, within its interval); the views that list buffers, and everything once the
// daemon stops answering, from a collector of its own. That collector is dropped when the
// daemon answers again: at a million live buffers it holds a few hundred megabytes.
class DaemonFirstSource : public SnapshotSource {
 public:
  DaemonFirstSource(const cli::GlobalOptions& global, std::string url)
      : global_(global), url_(std::move(url)) {}
  void refresh() override {
    if (!list_buffers_ && !daemon_gone_) {
      if (auto s = cli::fetch_daemon_status(url_, /*fresh=*/false)) {
        from_daemon_ = std::move(*s);
        local_.reset();
        return;
      }
      daemon_gone_ = true;  // stopped or stuck: the segments are read from now on
    }
    local().refresh();
  }
  void wait(int timeout_ms) override {
    if (list_buffers_ || daemon_gone_) return local().wait(timeout_ms);
    // A signal (q, Ctrl-C) ends the sleep early: poll() is not restarted.
    ::poll(nullptr, 0, timeout_ms);
    refresh();
  }
  const Snapshot& snapshot() const override {
    return local_ ? local_->snapshot() : from_daemon_;
  }
  void set_list_buffers(bool list) override {
    list_buffers_ = list;
    if (local_) local_->set_list_buffers(list);
  }
  bool lists_buffers() const override { return list_buffers_; }
  std::string label() const override { return local_ ? "" : "via ttmemd"; }

 private:
  LocalSource& local() {
    if (!local_) {
      local_ = std::make_unique<LocalSource>(global_);
      local_->set_list_buffers(list_buffers_);
    }
    return *local_;
  }

  cli::GlobalOptions global_;
  std::string url_;
  Snapshot from_daemon_;
  std::unique_ptr<LocalSource> local_;
  bool list_buffers_ = false;
  bool daemon_gone_ = false;
};

// Reads exactly n bytes before the deadline (CLOCK_MONOTONIC ns); false on EOF or timeout.
bool read_exactly(int fd, uint8_t* p, size_t n, uint64_t deadline_ns) {
  while (n > 0) {
    uint64_t now = monotonic_ns();
    if (now >= deadline_ns) return false;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, int((deadline_ns - now) / 1'000'000) + 1) <= 0) return false;
    ssize_t got = ::recv(fd, p, n, 0);
    if (got <= 0) return false;
    p += got;
    n -= size_t(got);
  }
  return true;
}

}  // namespace

std::optional<std::string> find_ttmemd(const std::string& path, int timeout_ms) {
  namespace lg = protocol::legacy;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return std::nullopt;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> url;
  // The 144-byte form: the longest URL fits.
  constexpr size_t kForm = sizeof(lg::Message144);
  uint8_t buf[kForm];
  lg::encode(lg::request(lg::MessageType::ServerUrlQuery, -1, 0, 0, 0, int32_t(::getpid())), kForm,
             buf);
  const uint64_t deadline = monotonic_ns() + uint64_t(timeout_ms) * 1'000'000;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, buf, kForm, MSG_NOSIGNAL) == ssize_t(kForm) &&
      read_exactly(fd, buf, kForm, deadline) &&
      buf[0] == uint8_t(lg::MessageType::ServerUrlResponse)) {
    std::string text = lg::decode_url(buf, kForm);
    if (text.rfind("http://", 0) == 0) url = text;
  }
  ::close(fd);
  return url;
}

std::unique_ptr<SnapshotSource> open_source(const cli::GlobalOptions& global,
                                            const std::string& legacy_socket, bool ask_daemon) {
  if (!global.server.empty()) return std::make_unique<RemoteSource>(global);
  const char* env_dir = std::getenv("TTMEM_DIR");
  if (global.dir.empty() && (env_dir == nullptr || *env_dir == '\0')) {
    if (auto url = find_ttmemd(legacy_socket)) {
      cli::GlobalOptions remote = global;
      remote.server = *url;
      return std::make_unique<RemoteSource>(remote);
    }
  }
  // --no-tt-metal-shm asks for a view the daemon's may not be.
  if (ask_daemon && !global.no_tt_metal_shm) {
    const std::string dir = global.dir.empty() ? common::default_segment_dir() : global.dir;
    if (auto url = collector::find_daemon_url(dir)) {
      return std::make_unique<DaemonFirstSource>(global, *url);
    }
  }
  return std::make_unique<LocalSource>(global);
}

}  // namespace ttmem::top
