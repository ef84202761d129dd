// Legacy ingest: small clients of the lineage's AllocMessage protocol (72- and 144-byte forms)
// talk to the real ttmemd over its Unix socket, next to a real tracked process; replies and the
// HTTP model must both show one model.
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "daemon_harness.h"
#include "legacy_client.h"
#include "protocol/legacy.h"

namespace ttmem::test {
namespace {

using nlohmann::json;

constexpr uint8_t kDram = 0, kL1 = 1, kTrace = 4;

TEST(LegacyIngest, SeventyTwoAndOneFortyFourByteClientsJoinTheModel) {
  TempDir dir;
  std::string sock = dir.path() + "/alloc.sock";
  Ttmemd d(dir.path(), {"--legacy-socket", sock});
  ASSERT_FALSE(d.url().empty());
  // A tracked process (segment) on devices 0 and 1, with ground truth.
  Child load({TTMEM_TESTLOAD, "--devices", "2", "--threads", "1", "--ops", "300", "--truth",
              dir.path() + "/truth"},
             {{"TTMEM_DIR", dir.path()}});
  ASSERT_TRUE(load.expect_line("done"));
  json truth = read_json_file(dir.path() + "/truth.1.json");
  uint64_t seg_dram0 = truth["devices"]["0"]["DRAM"]["requested"].get<uint64_t>();
  uint64_t seg_trace1 = truth["devices"]["1"]["TRACE"]["requested"].get<uint64_t>();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // one refresh

  // A monitor-style client: a lone QUERY, so the form is known only from its length.
  LegacyClient monitor(sock, 72);
  ASSERT_TRUE(monitor.connected());
  lg::Message first = monitor.query(0);
  EXPECT_EQ(first.head.type, uint8_t(lg::MessageType::Response));
  EXPECT_EQ(first.dram, seg_dram0);

  // 72-byte allocator client.
  LegacyClient c72(sock, 72);
  using T = lg::MessageType;
  c72.send(LegacyClient::message(T::Alloc, 0, 1000, kDram, 0x1000));
  c72.send(LegacyClient::message(T::Alloc, 0, 200, kL1, 0x2000));
  c72.send(LegacyClient::message(T::Alloc, 0, 300, kL1, 0x3000));
  lg::Message q = c72.query(0);
  EXPECT_EQ(q.head.device_id, 0);
  EXPECT_EQ(q.dram, seg_dram0 + 1000);
  EXPECT_EQ(q.l1, truth["devices"]["0"]["L1"]["requested"].get<uint64_t>() + 500);

  // A FREE split across three writes (partial reads), then a free of an unknown address.
  auto free_bytes = c72.bytes(LegacyClient::message(T::Free, 0, 0, kDram, 0x1000));
  for (size_t at : {0u, 5u, 41u}) {
    size_t end = at == 41 ? free_bytes.size() : (at == 0 ? 5 : 41);
    c72.send_raw(std::vector<uint8_t>(free_bytes.begin() + at, free_bytes.begin() + end));
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
  c72.send(LegacyClient::message(T::Free, 0, 0, kDram, 0xdead));
  EXPECT_EQ(c72.query(0).dram, seg_dram0);

  // 144-byte client on device 1: a buffer, a CB, and DEVICE_INFO_QUERY.
  LegacyClient c144(sock, 144);
  c144.send(LegacyClient::message(T::Alloc, 1, 5000, kTrace, 0x9000));
  c144.send(LegacyClient::message(T::CbAlloc, 1, 64, 0, 0x100));
  lg::Message q1 = c144.query(1);
  EXPECT_EQ(q1.trace, seg_trace1 + 5000);
  EXPECT_EQ(q1.cb, truth["devices"]["1"]["CB"]["requested"].get<uint64_t>() + 64);
  c144.send(LegacyClient::message(T::DeviceInfoQuery, -1));
  auto info = c144.receive();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->head.type, uint8_t(T::DeviceInfoResponse));
  EXPECT_EQ(info->info.num_devices, 2u);
  c144.send(LegacyClient::message(T::DeviceInfoQuery, 0));
  auto info0 = c144.receive();
  ASSERT_TRUE(info0);
  EXPECT_EQ(info0->info.num_dram_channels, 12u);
  EXPECT_EQ(info0->info.l1_size_per_core, 1499136u);
  EXPECT_EQ(info0->info.is_available, 1u);

  // Both allocator connections are processes in the HTTP model; the monitor is not.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  json procs = get_json(d.url(), "/api/v1/processes");
  size_t legacy = 0;
  for (const auto& p : procs["processes"]) {
    if (p["segment"].get<std::string>().rfind("legacy:", 0) != 0) continue;
    ++legacy;
    EXPECT_EQ(p["pid"].get<pid_t>(), ::getpid());
  }
  EXPECT_EQ(legacy, 2u);
  json buffers = get_json(d.url(), "/api/v1/buffers?device=1&kind=TRACE");
  EXPECT_EQ(buffers["total"].get<uint64_t>(),
            truth["devices"]["1"]["TRACE"]["count"].get<uint64_t>() + 1);
  json status = get_json(d.url(), "/api/v1/status");
  for (const auto& p : status["processes"]) {
    if (p["segment"].get<std::string>().find("#2") != std::string::npos) {
      EXPECT_EQ(p["unknown_frees"], 1);
      EXPECT_EQ(p["reserved_bytes"]["L1"], 500);
    }
  }

  // A client that closes with live buffers leaves leak records (CBs are not leaks).
  size_t leaks_before = get_json(d.url(), "/api/v1/leaks")["leaks"].size();
  { LegacyClient gone(sock, 144); gone.send(LegacyClient::message(T::Alloc, 1, 77, kDram, 0x77)); gone.query(1); }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  json leaks = get_json(d.url(), "/api/v1/leaks")["leaks"];
  ASSERT_EQ(leaks.size(), leaks_before + 1);
  EXPECT_EQ(leaks.back()["size_bytes"], 77);
}

TEST(LegacyIngest, GarbageIsRejectedAndNeverCrashes) {
  TempDir dir;
  std::string sock = dir.path() + "/alloc.sock";
  Ttmemd d(dir.path(), {"--legacy-socket", sock});
  // Not a message: wrong type byte.
  {
    LegacyClient g(sock, 72);
    g.send_raw(std::vector<uint8_t>(200, 0xff));
    EXPECT_TRUE(g.closed_by_peer());
  }
  // A valid first message, then bytes out of step.
  {
    LegacyClient g(sock, 72);
    auto b = g.bytes(LegacyClient::message(lg::MessageType::Alloc, 0, 10, 0, 0x10));
    b.resize(72 * 3, 0x42);
    g.send_raw(b);
    EXPECT_TRUE(g.closed_by_peer());
  }
  // Random streams of every length, some starting with a plausible head.
  std::mt19937 rng(1);
  for (int i = 0; i < 40; ++i) {
    LegacyClient g(sock, 72);
    std::vector<uint8_t> b(rng() % 600);
    for (auto& x : b) x = uint8_t(rng());
    if (b.size() >= 4 && i % 2 == 0) b[0] = uint8_t(1 + rng() % 12), b[1] = b[2] = b[3] = 0;
    if (!b.empty()) g.send_raw(b);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // one publication
  HttpReply m = http_get(d.url(), "/metrics");
  EXPECT_NE(m.body.find("ttmem_legacy_rejected_bytes_total "), std::string::npos);
  EXPECT_EQ(m.body.find("ttmem_legacy_rejected_bytes_total 0\n"), std::string::npos);
  // Still serving both protocols.
  LegacyClient ok(sock, 144);
  EXPECT_EQ(ok.query(0).head.type, uint8_t(lg::MessageType::Response));
  EXPECT_EQ(http_get(d.url(), "/api/v1/status").status, 200);

  // A daemon fixed to one form takes its messages without detection.
  TempDir dir2;
  std::string sock2 = dir2.path() + "/fixed.sock";
  Ttmemd fixed(dir2.path(), {"--legacy-socket", sock2, "--legacy-message-size", "144"});
  LegacyClient c(sock2, 144);
  c.send(LegacyClient::message(lg::MessageType::Alloc, 3, 4096, kL1, 0x40));
  EXPECT_EQ(c.query(3).l1, 4096u);
}

}  // namespace
}  // namespace ttmem::test
