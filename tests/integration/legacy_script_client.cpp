// ttmem_legacy_client: a client of the allocation-server prototype's AllocMessage protocol,
// driven by a script on stdin, so the tests can run legacy clients as processes of their own
// (one pid per process, killed, or ended with connections open) in any of the three forms.
//
// Like the prototype's clients it writes with plain write(): if the server closed a connection,
// the next write raises SIGPIPE and ends this process, which is what the tests watch for.
//
// One command a line; each answers one line on stdout:
//   connect FORM [PATH]            -> "conn N"   (FORM 72, 112 or 144; PATH default: argv[1])
//   send N TYPE DEV SIZE BTYPE ADDR -> "ok"      (any message type, as numbers)
//   many N DEV COUNT SIZE BTYPE BASE -> "ok"     (COUNT ALLOCs at BASE, BASE+SIZE, ...)
//   query N DEV                     -> "reply DRAM L1 L1_SMALL TRACE CB KERNEL"
//   info N DEV                      -> "info NUM_DEVICES AVAILABLE ARCH CHANNELS PER_CHANNEL
//                                       L1_PER_CORE TOTAL_DRAM TOTAL_L1"
//   url N                           -> "url TEXT"
//   close N                         -> "ok"
//   pid                             -> "pid P"
//   exit                            -> exits 0
// A reply that does not come within 5 s answers "timeout"; a connection that cannot be made
// answers "error WHY".
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/legacy.h"

namespace lg = ttmem::protocol::legacy;

namespace {

struct Connection {
  int fd = -1;
  size_t form = 0;
};

bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);  // no MSG_NOSIGNAL: as the prototype's clients
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

// One reply of the connection's form; nullopt on EOF or after 5 s.
std::optional<std::vector<uint8_t>> receive(const Connection& c) {
  std::vector<uint8_t> b(c.form);
  size_t got = 0;
  while (got < c.form) {
    pollfd p{c.fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return std::nullopt;
    ssize_t n = ::read(c.fd, b.data() + got, c.form - got);
    if (n <= 0) return std::nullopt;
    got += size_t(n);
  }
  return b;
}

lg::Message message(uint8_t type, int32_t device, uint64_t size, uint8_t buffer_type,
                    uint64_t address) {
  return lg::request(lg::MessageType(type), device, size, buffer_type, address,
                     int32_t(::getpid()));
}

bool send(const Connection& c, const lg::Message& m) {
  uint8_t buf[sizeof(lg::Message144)];
  lg::encode(m, c.form, buf);
  return write_all(c.fd, buf, c.form);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string default_path = argc > 1 ? argv[1] : lg::kDefaultSocketPath;
  std::vector<Connection> conns;
  std::string line;
  auto say = [](const std::string& s) {
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  };
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    size_t n = 0;
    if (cmd == "exit") return 0;
    if (cmd == "pid") {
      say("pid " + std::to_string(::getpid()));
      continue;
    }
    if (cmd == "connect") {
      size_t form = 0;
      std::string path = default_path;
      in >> form >> path;
      Connection c;
      c.form = form;
      c.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
      if (!lg::is_form(form) || ::connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        say(std::string("error ") + std::strerror(errno));
        ::close(c.fd);
        continue;
      }
      conns.push_back(c);
      say("conn " + std::to_string(conns.size() - 1));
      continue;
    }
    in >> n;
    if (n >= conns.size()) {
      say("error no connection " + std::to_string(n));
      continue;
    }
    Connection& c = conns[n];
    int32_t dev = 0;
    if (cmd == "send") {
      unsigned type = 0, btype = 0;
      uint64_t size = 0, addr = 0;
      in >> type >> dev >> size >> btype >> addr;
      say(send(c, message(uint8_t(type), dev, size, uint8_t(btype), addr)) ? "ok" : "error send");
    } else if (cmd == "many") {
      uint64_t count = 0, size = 0, base = 0;
      unsigned btype = 0;
      in >> dev >> count >> size >> btype >> base;
      // Written in large batches: a real client's burst, and quick for the tests.
      std::vector<uint8_t> batch;
      bool ok = true;
      for (uint64_t i = 0; i < count && ok; ++i) {
        size_t at = batch.size();
        batch.resize(at + c.form);
        lg::encode(
            message(uint8_t(lg::MessageType::Alloc), dev, size, uint8_t(btype), base + i * size),
            c.form, batch.data() + at);
        if (batch.size() >= (1u << 20) || i + 1 == count) {
          ok = write_all(c.fd, batch.data(), batch.size());
          batch.clear();
        }
      }
      say(ok ? "ok" : "error send");
    } else if (cmd == "query" || cmd == "info" || cmd == "url") {
      in >> dev;
      uint8_t type = uint8_t(cmd == "query"  ? lg::MessageType::Query
                             : cmd == "info" ? lg::MessageType::DeviceInfoQuery
                                             : lg::MessageType::ServerUrlQuery);
      if (!send(c, message(type, dev, 0, 0, 0))) {
        say("error send");
        continue;
      }
      auto bytes = receive(c);
      if (!bytes) {
        say("timeout");
        continue;
      }
      if (cmd == "url") {
        say("url " + lg::decode_url(bytes->data(), c.form));
        continue;
      }
      const lg::Message reply = lg::decode(bytes->data(), c.form);
      const lg::Message* r = &reply;
      if (cmd == "query") {
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "reply %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
                      r->dram, r->l1, r->l1_small, r->trace, r->cb, r->kernel);
        say(buf);
      } else {
        char buf[256];
        std::snprintf(buf, sizeof buf, "info %u %u %u %u %u %u %" PRIu64 " %" PRIu64,
                      r->info.num_devices, r->info.is_available, r->info.arch_type,
                      r->info.num_dram_channels, r->info.dram_size_per_channel,
                      r->info.l1_size_per_core, r->info.total_dram_size, r->info.total_l1_size);
        say(buf);
      }
    } else if (cmd == "close") {
      ::close(c.fd);
      c.fd = -1;
      say("ok");
    } else {
      say("error unknown command " + cmd);
    }
  }
  return 0;
}
