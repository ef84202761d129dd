// Clients of the allocation-server prototype's AllocMessage protocol (protocol/legacy.h) for tests
// of ttmemd's legacy ingest: LegacyClient speaks from the test process itself (fixed-size
// messages of one form over the Unix stream socket); ScriptClient is a process of its own
// (ttmem_legacy_client), with its own pid, that writes without MSG_NOSIGNAL as the prototype's
// clients do.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "protocol/legacy.h"

namespace ttmem::test {

namespace lg = protocol::legacy;

class LegacyClient {
 public:
  LegacyClient(const std::string& path, size_t form) : form_(form) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~LegacyClient() { ::close(fd_); }
  bool connected() const { return connected_; }

  static lg::Message message(lg::MessageType type, int32_t device, uint64_t size = 0,
                             uint8_t buffer_type = 0, uint64_t address = 0) {
    return lg::request(type, device, size, buffer_type, address, int32_t(::getpid()));
  }
  std::vector<uint8_t> bytes(const lg::Message& m) const {
    std::vector<uint8_t> b(form_);
    lg::encode(m, form_, b.data());
    return b;
  }
  void send_raw(const std::vector<uint8_t>& b) {
    ASSERT_EQ(::send(fd_, b.data(), b.size(), MSG_NOSIGNAL), ssize_t(b.size()));
  }
  void send(const lg::Message& m) { send_raw(bytes(m)); }
  // False when the message could not be sent (the daemon is gone).
  bool try_send(const lg::Message& m) {
    std::vector<uint8_t> b = bytes(m);
    return ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL) == ssize_t(b.size());
  }
  // One reply of this connection's form; nullopt on EOF or after 5 s.
  std::optional<lg::Message> receive() {
    std::vector<uint8_t> b(form_);
    size_t got = 0;
    while (got < form_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) return std::nullopt;
      ssize_t n = ::recv(fd_, b.data() + got, form_ - got, 0);
      if (n <= 0) return std::nullopt;
      got += size_t(n);
    }
    return lg::decode(b.data(), form_);
  }
  lg::Message query(int32_t device) {
    send(message(lg::MessageType::Query, device));
    auto r = receive();
    EXPECT_TRUE(r.has_value()) << "no reply to QUERY";
    return r.value_or(lg::Message{});
  }
  // True when the daemon closed the connection (EOF within 5 s).
  bool closed_by_peer() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return false;
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  size_t form_;
  int fd_ = -1;
  bool connected_ = false;
};

#ifdef TTMEM_LEGACY_CLIENT
class ScriptClient {
 public:
  explicit ScriptClient(const std::string& socket_path)
      : child_({TTMEM_LEGACY_CLIENT, socket_path}, {}) {}

  // Runs one command of the script (tests/integration/legacy_script_client.cpp); its answer.
  std::string say(const std::string& command) {
    child_.write_line(command);
    return child_.read_line(60000).value_or("(no answer)");
  }
  // A new connection of `form` bytes; its number.
  int connect(size_t form) {
    std::string r = say("connect " + std::to_string(form));
    EXPECT_EQ(r.rfind("conn ", 0), 0u) << r;
    return r.rfind("conn ", 0) == 0 ? std::stoi(r.substr(5)) : 0;
  }
  void send(int conn, lg::MessageType type, int32_t device, uint64_t size, uint8_t buffer_type = 0,
            uint64_t address = 0) {
    std::ostringstream cmd;
    cmd << "send " << conn << ' ' << unsigned(type) << ' ' << device << ' ' << size << ' '
        << unsigned(buffer_type) << ' ' << address;
    EXPECT_EQ(say(cmd.str()), "ok") << cmd.str();
  }
  // QUERY: dram, l1, l1_small, trace, cb, kernel (zeros if no reply came).
  std::array<uint64_t, 6> query(int conn, int32_t device) {
    std::string r = say("query " + std::to_string(conn) + " " + std::to_string(device));
    std::array<uint64_t, 6> v{};
    std::istringstream in(r);
    std::string word;
    in >> word;
    EXPECT_EQ(word, "reply") << r;
    for (auto& x : v) in >> x;
    return v;
  }
  Child& child() { return child_; }

 private:
  Child child_;
};
#endif

}  // namespace ttmem::test
