#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "collector/daemon_file.h"
#include "daemon/external.h"
#include "common/clock.h"
#include "daemon/http_server.h"
#include "daemon/legacy_ingest.h"
#include "daemon/refresh_pacer.h"

namespace ttmem::daemon {

using collector::CollectorOptions;
using common::monotonic_ns;
using common::thread_cpu_ns;

namespace {

enum : uint64_t { kTagCollector = 1, kTagTimer, kTagStop, kTagSignal, kTagLegacy, kTagRequests };

// How long a request waits for the event loop: listing a million buffers takes it a fraction of
// a second, a refresh far less.
constexpr int kEventLoopTimeoutMs = 10'000;

void epoll_add(int epoll_fd, int fd, uint64_t tag, uint32_t events = EPOLLIN) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw std::runtime_error(fmt::format("epoll_ctl: {}", std::strerror(errno)));
  }
}

CollectorOptions collector_options(const DaemonOptions& o) {
  CollectorOptions c;
  c.dir = o.dir;
  c.reap = o.reap;
  c.tt_metal_shm = o.tt_metal_shm;
  // Refreshed every few milliseconds under churn: each refresh applies what changed.
  c.incremental = o.incremental;
  c.list_buffers = !o.incremental;
  return c;
}

}  // namespace

bool is_loopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  return false;
}

std::pair<std::string, int> parse_listen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
    throw std::invalid_argument(
        fmt::format("--listen '{}' is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)", listen));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string port_text = listen.substr(colon + 1);
  int port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9' || port > 65535) {
      throw std::invalid_argument(fmt::format("--listen port '{}' is not a number", port_text));
    }
    port = port * 10 + (c - '0');
  }
  if (port > 65535) throw std::invalid_argument("--listen port must be 0..65535");
  return {host, port};
}

sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A client that goes away mid-reply must not end the daemon (sends use MSG_NOSIGNAL too).
  ::signal(SIGPIPE, SIG_IGN);
  return set;
}

Daemon::Daemon(DaemonOptions options)
    : options_(std::move(options)),
      collector_(collector_options(options_)),
      history_(options_.history) {
  auto [host, port] = parse_listen(options_.listen);
  if (!is_loopback(host) && options_.token.empty()) {
    throw std::runtime_error(fmt::format(
        "refusing to serve on {} without a token: anyone who can reach it could read this "
        "host's processes and buffers. Pass --token-file FILE (clients then send "
        "'Authorization: Bearer <token>'), or listen on 127.0.0.1",
        host));
  }
  host_ = host;
  if (!options_.legacy_socket.empty()) {
    // One listener that cannot start must not take the others down: someone who can create a
    // file at the socket path (a shared /tmp) could otherwise keep ttmemd from serving at all.
    try {
      legacy_ = std::make_unique<LegacyIngest>(
          LegacyOptions{options_.legacy_socket, options_.legacy_form, options_.legacy_group,
                        options_.legacy_max_records});
      legacy_status_ = "legacy ingest on " + options_.legacy_socket;
    } catch (const LegacySocketUnavailable& e) {
      legacy_status_ = std::string("legacy ingest off: ") + e.what();
      std::fprintf(stderr, "ttmemd: %s\n", legacy_status_.c_str());
    }
  }

  ApiOptions api;
  api.token = options_.token;
  api.metrics.per_process = options_.process_metrics;
  api.metrics.version = TTMEM_VERSION;
  http_ = std::make_unique<HttpServer>(
      host_, port, options_.http_limits,
      [this, api](const HttpRequest& req) {
        return answer_request(req, board_, history_, api, list_slots_);
      });
  port_ = http_->port();

  if (legacy_) legacy_->set_server_url(url());

  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || timer_fd_ < 0 || stop_fd_ < 0) {
    throw std::runtime_error(fmt::format("cannot create the event loop: {}", std::strerror(errno)));
  }
  // Edge-triggered: a dead process's pidfd stays readable until it is reaped; one wake-up per
  // change is enough, and the timer refreshes anyway.
  epoll_add(epoll_fd_, collector_.fd(), kTagCollector, EPOLLIN | EPOLLET);
  epoll_add(epoll_fd_, timer_fd_, kTagTimer);
  epoll_add(epoll_fd_, stop_fd_, kTagStop);
  if (legacy_) epoll_add(epoll_fd_, legacy_->fd(), kTagLegacy);
  epoll_add(epoll_fd_, requests_->fd(), kTagRequests);
  itimerspec its{};
  its.it_interval.tv_sec = time_t(options_.refresh_ms / 1000);
  its.it_interval.tv_nsec = long(options_.refresh_ms % 1000) * 1'000'000;
  its.it_value = its.it_interval;
  ::timerfd_settime(timer_fd_, 0, &its, nullptr);

  refresh_and_publish();
  http_->start();
}

Daemon::~Daemon() {
  requests_->close();  // a request waiting for the event loop would wait for nothing
  http_.reset();  // its answers read board_ and history_
  for (int fd : {epoll_fd_, timer_fd_, stop_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

std::string Daemon::url() const {
  bool v6 = host_.find(':') != std::string::npos;
  return fmt::format("http://{}{}{}:{}", v6 ? "[" : "", host_, v6 ? "]" : "", port_);
}

void Daemon::stop() {
  uint64_t one = 1;
  ssize_t n = ::write(stop_fd_, &one, sizeof one);
  (void)n;
}

collector::Snapshot Daemon::merged_snapshot(bool list_buffers) {
  collector::Snapshot s = collector_.snapshot();
  if (list_buffers && !collector_.lists_buffers()) s.buffers = collector_.list_buffers();
  if (legacy_) merge_external(s, legacy_->processes());
  return s;
}

void Daemon::answer_requests() {
  requests_->answer([this] { refresh_and_publish(/*drain_notifications=*/true); },
                    [this] {
                      auto listed = last_listing_.lock();
                      if (!listed || last_listing_publication_ != publications_) {
                        listed = std::make_shared<const collector::Snapshot>(
                            merged_snapshot(true));
                        last_listing_ = listed;
                        last_listing_publication_ = publications_;
                      }
                      return listed;
                    });
}

void Daemon::write_discovery_file() {
  // Only a daemon `ttmem status` can ask without a token; the directory is made by the first
  // tracked program, so the file waits for it.
  if (discovery_written_ || !options_.token.empty() || collector_.segment_dir_missing()) return;
  discovery_written_ = true;
  if (std::string err = collector::write_daemon_file(collector_.dir(), url()); !err.empty()) {
    std::fprintf(stderr, "ttmemd: %s; `ttmem status` will read the segments itself\n",
                 err.c_str());
  }
}

void Daemon::remove_discovery_file() {
  if (discovery_written_) collector::remove_daemon_file(collector_.dir());
}

void Daemon::publish() {
  write_discovery_file();
  auto pub = std::make_shared<Published>();
  pub->snapshot = merged_snapshot(false);
  ++publications_;
  if (!collector_.lists_buffers()) {
    pub->list_buffers = [requests = requests_] {
      return requests->list_buffers(kEventLoopTimeoutMs);
    };
  }
  pub->refresh_now = [requests = requests_] { return requests->refresh(kEventLoopTimeoutMs); };
  if (legacy_) {
    pub->legacy_connections = legacy_->connections();
    pub->legacy_rejected_bytes = legacy_->rejected_bytes();
    pub->legacy = legacy_->report();
    pub->legacy_kernel_bytes = legacy_->kernel_bytes();
  }
  pub->refreshes = refreshes_;
  pub->refresh_cpu_ns = refresh_cpu_ns_;
  ledger_.update(pub->snapshot);
  pub->totals = ledger_.totals();
  history_.sample(pub->snapshot);
  board_.publish(std::move(pub));
}

bool Daemon::save_legacy_leaks() {
  auto processes = legacy_->take_leaks();
  for (const auto& leaks : processes) {
    if (std::string err = collector_.leak_store().save(leaks, "legacy"); !err.empty()) {
      std::fprintf(stderr, "ttmemd: cannot save the leak records of legacy client %d: %s\n",
                   int(leaks.front().pid), err.c_str());
    }
  }
  return !processes.empty();
}

void Daemon::refresh_and_publish(bool drain_notifications) {
  const uint64_t cpu_before = thread_cpu_ns();
  if (drain_notifications) {
    collector_.wait(0);  // drains inotify, then refreshes
  } else {
    collector_.refresh();
  }
  refreshes_ += 1;
  refresh_cpu_ns_ += thread_cpu_ns() - cpu_before;
  publish();
}

int Daemon::run(bool handle_signals) {
  int signal_fd = -1;
  if (handle_signals) {
    // Blocked already in main() before any thread started (block_stop_signals); blocking them
    // again here keeps run() right for an embedder that did not.
    const sigset_t set = block_stop_signals();
    signal_fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd >= 0) epoll_add(epoll_fd_, signal_fd, kTagSignal);
  }
  bool running = true;
  bool dirty = false;
  uint64_t last_publish = monotonic_ns();
  uint64_t next_early_refresh = 0;
  RefreshPacer pacer;  // early refreshes: at most 10 % of a core
  uint64_t loop_cpu_at_refresh = thread_cpu_ns();
  bool change_pending = false;  // a change seen that waits for next_early_refresh
  const int change_poll = int(options_.change_poll_ms);
  auto sooner = [](int timeout, int ms) { return timeout < 0 ? ms : std::min(timeout, ms); };
  while (running) {
    int timeout = -1;
    if (legacy_) timeout = legacy_->next_timeout_ms();
    if (dirty) timeout = sooner(timeout, 50);
    if (change_poll > 0) {
      timeout = sooner(timeout, change_poll);
      // A change seen while early refreshes were held back is refreshed the moment they may
      // start again, not at the next poll: up to a poll period sooner.
      const uint64_t now = monotonic_ns();
      if (change_pending && now < next_early_refresh) {
        timeout = sooner(timeout, int((next_early_refresh - now + 999'999) / 1'000'000));
      }
    }
    epoll_event events[16];
    int n = ::epoll_wait(epoll_fd_, events, 16, timeout);
    if (n < 0 && errno != EINTR) break;
    bool refresh = false;
    for (int i = 0; i < n; ++i) {
      switch (events[i].data.u64) {
        case kTagTimer: {
          uint64_t expirations;
          while (::read(timer_fd_, &expirations, sizeof expirations) > 0) {
          }
          refresh = true;
          break;
        }
        case kTagCollector:
          refresh = true;
          break;
        case kTagStop:
        case kTagSignal:
          running = false;
          break;
        case kTagLegacy:
          break;
        case kTagRequests:
          answer_requests();
          break;
      }
    }
    if (legacy_ && legacy_->poll(collector_.snapshot())) dirty = true;
    if (legacy_ && save_legacy_leaks()) refresh = true;  // the leak list changed
    if (!refresh && change_poll > 0 && (change_pending || collector_.changed())) {
      change_pending = monotonic_ns() < next_early_refresh;
      refresh = !change_pending;
    }
    if (refresh) {
      refresh_and_publish(/*drain_notifications=*/true);
      dirty = false;
      change_pending = false;
      last_publish = monotonic_ns();
      // The loop's CPU since the last refresh: the refresh, and the change polls, requests and
      // legacy messages between, so that the loop as a whole keeps to a tenth of a core.
      const uint64_t loop_cpu = thread_cpu_ns();
      next_early_refresh = pacer.after_refresh(last_publish, loop_cpu - loop_cpu_at_refresh);
      loop_cpu_at_refresh = loop_cpu;
    } else if (dirty && monotonic_ns() - last_publish >= 50'000'000) {
      // Legacy messages changed the model: show them without waiting for the timer, but at most
      // 20 times a second however chatty the clients are.
      publish();
      dirty = false;
      last_publish = monotonic_ns();
    }
  }
  if (legacy_) {
    // Processes that ended while the daemon was stopping leave their leak records before the
    // legacy state, which lives only here, is gone.
    legacy_->finish(collector_.snapshot());
    save_legacy_leaks();
  }
  requests_->close();
  remove_discovery_file();
  if (signal_fd >= 0) ::close(signal_fd);
  return 0;
}

}  // namespace ttmem::daemon
