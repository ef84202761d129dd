// Fuzz target: the reader of tt-metal's per-chip counter files (collector/tt_metal_counters.h),
// which any process of any user may write, and the merge of what it accepts into a snapshot.
//
//   flags u8 | chip id u64 (little-endian: the id the file name gives) | body
//
//   flags bit 0 clear: the body is the whole file (sizes, versions and garbage as they come)
//   flags bit 0 set:   the body patches a well-formed region of version 3 (bit 1 clear) or 4,
//                      for the chip, with every chip slot unused: {offset u16, length u8,
//                      bytes[length]} at offset modulo the region's size. A real region is 8 KiB
//                      of mostly zeros; this reaches its slot checks without guessing all of it.
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "collector/json.h"
#include "collector/tt_metal_counters.h"
#include "fuzz_support.h"
#include "protocol/tt_metal_shm.h"

namespace {

namespace shm = ttmem::protocol::tt_metal_shm;

std::vector<std::byte> well_formed(uint32_t version, uint64_t chip) {
  shm::DeviceMemoryRegion r;
  std::memset(&r, 0, sizeof r);
  r.version = version;
  r.asic_id = chip;
  for (auto& c : r.chip_stats) c.chip_id = shm::kChipUnused;
  if (version >= 4) r.init_state = shm::kInitReady;
  std::vector<std::byte> bytes(sizeof r);
  std::memcpy(bytes.data(), &r, sizeof r);
  return bytes;
}

void apply_patches(std::vector<std::byte>& file, const uint8_t* p, size_t n) {
  while (n >= 3) {
    const size_t offset = (size_t(p[0]) | size_t(p[1]) << 8) % file.size();
    const size_t length = std::min<size_t>({p[2], n - 3, file.size() - offset});
    std::memcpy(file.data() + offset, p + 3, length);
    p += 3 + length;
    n -= 3 + length;
  }
}

// What the reader promises about anything it accepts.
void check_region(const ttmem::collector::TtMetalRegion& r, uint64_t chip) {
  FUZZ_CHECK(r.chip_id == chip);
  FUZZ_CHECK(r.file.version >= shm::kMinVersion && r.file.version <= shm::kMaxVersion);
  FUZZ_CHECK(r.file.remote_chips.size() <= shm::kMaxChips);
  FUZZ_CHECK(r.processes.size() <= shm::kMaxProcesses);
  for (const auto& p : r.processes) {
    FUZZ_CHECK(p.pid > 0);
    for (char c : p.name) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
    for (uint64_t b : p.bytes) FUZZ_CHECK(b <= (uint64_t{1} << 50));
  }
  for (uint64_t b : r.file.totals) FUZZ_CHECK(b <= (uint64_t{1} << 50));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 9) return 0;
  const uint8_t flags = data[0];
  uint64_t chip = 0;
  for (int i = 0; i < 8; ++i) chip |= uint64_t(data[1 + i]) << (8 * i);
  data += 9;
  size -= 9;
  std::vector<std::byte> file;
  if (flags & 1) {
    file = well_formed(flags & 2 ? 4 : 3, chip);
    apply_patches(file, data, size);
  } else {
    file.assign(reinterpret_cast<const std::byte*>(data),
                reinterpret_cast<const std::byte*>(data) + size);
  }

  std::string error;
  auto parsed = ttmem::collector::parse_tt_metal_region(file, chip, &error);
  FUZZ_CHECK(parsed.has_value() == error.empty());
  if (parsed) check_region(*parsed, chip);

  // The same bytes as a file, read and merged as a collector does.
  static ttmem::fuzz::ScratchFile scratch("tt_device_" + std::to_string(chip) + "_memory");
  const std::string dir = scratch.path().substr(0, scratch.path().rfind('/'));
  // The scratch file's name is fixed by the first input: rename it to this input's chip.
  const std::string path = dir + "/tt_device_" + std::to_string(chip) + "_memory";
  scratch.write(reinterpret_cast<const uint8_t*>(file.data()), file.size());
  if (path != scratch.path()) std::rename(scratch.path().c_str(), path.c_str());
  ttmem::collector::TtMetalScan scan = ttmem::collector::read_tt_metal_counters(dir);
  if (path != scratch.path()) std::rename(path.c_str(), scratch.path().c_str());
  FUZZ_CHECK(scan.regions.size() <= 1);
  FUZZ_CHECK(scan.regions.size() == (parsed ? 1u : 0u));
  for (const auto& r : scan.regions) check_region(r, chip);
  ttmem::collector::Snapshot s;
  ttmem::collector::merge_tt_metal_counters(s, scan);
  // Everything merged reaches JSON (the API, --json): it must serialise.
  (void)ttmem::collector::status_json(s).dump();
  return 0;
}
