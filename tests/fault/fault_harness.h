// Shared pieces of the fault-injection tests: the acknowledgement file a fault client writes,
// what it says was acknowledged, and the seed every randomised test prints so a failure can be
// replayed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ack_table.h"
#include "collector/snapshot.h"
#include "harness.h"

namespace ttmem::test::fault {

// A zeroed AckTable in a file, mapped shared with the fault client that will use it.
class AckFile {
 public:
  AckFile(const std::string& path, uint32_t threads, uint32_t devices);
  ~AckFile();
  AckFile(const AckFile&) = delete;
  AckFile& operator=(const AckFile&) = delete;
  const std::string& path() const { return path_; }
  AckTable& table() { return *table_; }
  const AckTable& table() const { return *table_; }

  // Asks every thread to park between calls and waits until all have (false after 10 s).
  bool pause();
  void resume();
  uint64_t ops() const;

 private:
  std::string path_;
  AckTable* table_ = nullptr;
};

// What the table says about the buffers of a client that is dead or paused.
struct Acknowledged {
  std::map<uint64_t, ExpectedBuffer> live;   // alloc returned, free not yet called
  std::map<uint64_t, ExpectedBuffer> maybe;  // the call in flight at the kill: either way
  std::string problem;                       // "" unless the table breaks its own rules
};
Acknowledged acknowledged(const AckTable& table);

// "" when the fields a reader shows for buffer `id` are the ones the client wrote, else both.
std::string buffer_differs(uint64_t id, uint32_t device, uint32_t kind, uint64_t address,
                           uint64_t size, uint64_t reserved, const ExpectedBuffer& want);

// The leak records of `pid` are exactly the acknowledged live set, give or take only the buffers
// whose call was in flight when the process died; every field matches what the client wrote.
void expect_leaks_are_acknowledged(const std::vector<collector::LeakRecord>& leaks, pid_t pid,
                                   const AckTable& table);

// The acknowledged live set as the testload truth JSON (devices, chip_id), which
// status_differs() compares with a ttmemd status. Only for a paused client (nothing in flight).
nlohmann::json truth_json(const AckTable& table);

// `ttmem_fault_client churn` on `ack`, tracking into `dir`.
std::unique_ptr<Child> start_churn(const std::string& dir, const AckFile& ack, uint64_t seed);

// The seed of a randomised test: $TTMEM_FAULT_SEED if set, else a fresh one. Printed, so a
// failure names the seed that reproduces it.
uint64_t test_seed();

// Names of the files left in a segment directory, leak reports and a ttmemd's ttmemd.json
// excluded.
std::vector<std::string> leftover_files(const std::string& dir);

// Open file descriptors of a process, from /proc (resident memory: rss_bytes in harness.h).
size_t open_fds(pid_t pid);

}  // namespace ttmem::test::fault
