// The recording file written by `ttmem record` and read by `ttmem export`: the one definition of
// its layout (mirrored in docs/protocol.md, "Recording file").
//
// A FileHeader, then blocks. A block is a BlockHeader and records back to back; its header
// holds a CRC-32C of those bytes, so a damaged block is detected rather than misread. Each
// record is a RecordHeader followed by `size` payload bytes, wholly inside one block. Payloads
// embed the segment's own EventRecord, BufferRecord and DeviceSlot (protocol/segment.h), so a
// recording holds exactly what the segments held.
//
//   0   +--------------------------+
//       | FileHeader         64 B  |  magic, version, record sizes, checkpoint interval
//  64   +--------------------------+
//       | BlockHeader        16 B  |  marker, bytes, records, CRC-32C of the bytes
//       |   RecordHeader     16 B  |  type, payload size, time (CLOCK_MONOTONIC ns)
//       |   payload        size B  |
//       |   ...                    |
//       +--------------------------+
//       | ...                      |
//
// The recorder ends a block at least at every refresh (tens of milliseconds), so a recorder
// killed mid-write loses at most its last block, and a reader recognises that block as cut
// short (the file ends inside it) rather than corrupt.
//
// A CHECKPOINT holds every live buffer at its time: a reader seeks to the last checkpoint before
// the moment it wants and replays EVENTs after it. A checkpoint's time is taken before the state
// it holds was read, so replaying events after it is idempotent: an ALLOC of a buffer already
// live replaces it, a FREE of a buffer not live is ignored. One case is not: an ALLOC read with
// the state whose FREE came just after the read shows the buffer until the next refresh's events
// bring that FREE. The last CHECKPOINT is therefore stamped after every EVENT in the file.
//
// Readers validate everything (a recording is input from anywhere): magic, version, every size
// field, every record's type and size, every index and kind.
#pragma once

#include <cstddef>
#include <cstdint>

#include "protocol/segment.h"

namespace ttmem::protocol::record {

// "TTMEMREC" read as a little-endian u64.
inline constexpr uint64_t kFileMagic = 0x434552'4D454D5454ULL;
inline constexpr uint32_t kFileVersion = 2;  // 2: records in checksummed blocks

// ---------------------------------------------------------------------------------------------
// FileHeader (64 B)
//
//   0 magic u64 | 8 version u32 | 12 header_size u32 = 64 | 16 record_header_size u32 = 16
//  20 event_size u32 = 64 | 24 buffer_record_size u32 = 64 | 28 device_slot_size u32 = 512
//  32 checkpoint_interval_ms u32 | 36 reserved u32
//  40 created_realtime_ns u64 | 48 created_monotonic_ns u64 | 56 reserved u64
// ---------------------------------------------------------------------------------------------
struct FileHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t header_size;
  uint32_t record_header_size;
  uint32_t event_size;
  uint32_t buffer_record_size;
  uint32_t device_slot_size;
  uint32_t checkpoint_interval_ms;
  uint32_t reserved0;
  uint64_t created_realtime_ns;
  uint64_t created_monotonic_ns;
  uint64_t reserved1;
};
static_assert(sizeof(FileHeader) == 64);
static_assert(offsetof(FileHeader, checkpoint_interval_ms) == 32);
static_assert(offsetof(FileHeader, created_realtime_ns) == 40);

// BlockHeader (16 B): 0 marker u32 = "TTMB" | 4 size u32 (bytes of records that follow)
// 8 records u32 | 12 crc32c u32 (CRC-32C of those `size` bytes)
inline constexpr uint32_t kBlockMarker = 0x424D5454;  // "TTMB" read as a little-endian u32
inline constexpr uint32_t kMaxBlockBytes = 16u << 20;
struct BlockHeader {
  uint32_t marker;
  uint32_t size;
  uint32_t records;
  uint32_t crc32c;
};
static_assert(sizeof(BlockHeader) == 16);

// RecordHeader (16 B): 0 type u16 | 2 reserved u16 | 4 size u32 (payload bytes) | 8 time_ns u64
struct RecordHeader {
  uint16_t type;
  uint16_t reserved;
  uint32_t size;
  uint64_t time_ns;
};
static_assert(sizeof(RecordHeader) == 16);

enum class RecordType : uint16_t {
  Process = 1,     // ProcessRecord + command bytes
  Device = 2,      // DeviceRecord
  String = 3,      // StringRecord + text bytes
  Event = 4,       // EventEntry
  Checkpoint = 5,  // CheckpointHead + count x CheckpointEntry
  Dropped = 6,     // DroppedRecord
  Problem = 7,     // ProblemRecord
  ProcessEnd = 8,  // ProcessEndRecord
};
inline constexpr uint16_t kMaxRecordType = 8;

// Process indexes are assigned by the recorder from 0; strings (tags) get recording-wide ids
// from 1 (0 = no tag), and every tag field in a payload holds such an id.
inline constexpr uint32_t kMaxProcesses = 1u << 16;
inline constexpr uint32_t kMaxStrings = 1u << 20;
inline constexpr uint32_t kMaxCommandBytes = kCmdlineBytes;
inline constexpr uint32_t kMaxCheckpointEntries = 1u << 24;

// PROCESS (24 B + command): 0 process u32 | 4 pid u32 | 8 start_time u64 | 16 uid u32
// 20 reserved u32 | 24 command (size - 24 bytes, at most 1024, not NUL-terminated)
struct ProcessRecord {
  uint32_t process;
  uint32_t pid;
  uint64_t start_time;
  uint32_t uid;
  uint32_t reserved;
};
static_assert(sizeof(ProcessRecord) == 24);

// DEVICE (520 B): 0 process u32 | 4 device u32 (the process's logical id) | 8 DeviceSlot (512 B)
struct DeviceRecord {
  uint32_t process;
  uint32_t device;
  DeviceSlot slot;
};
static_assert(sizeof(DeviceRecord) == 520);

// STRING (4 B + text): 0 id u32 | 4 text (size - 4 bytes, 1 to 126)
struct StringRecord {
  uint32_t id;
};
static_assert(sizeof(StringRecord) == 4);

// EVENT (72 B): 0 process u32 | 4 device u32 | 8 EventRecord (64 B; tag = recording string id)
struct EventEntry {
  uint32_t process;
  uint32_t device;
  EventRecord event;
};
static_assert(sizeof(EventEntry) == 72);

// CHECKPOINT (8 B + count x 72 B): 0 count u32 | 4 reserved u32, then entries
// CheckpointEntry: 0 process u32 | 4 device u32 | 8 BufferRecord (64 B; tag = recording string id)
struct CheckpointHead {
  uint32_t count;
  uint32_t reserved;
};
static_assert(sizeof(CheckpointHead) == 8);

struct CheckpointEntry {
  uint32_t process;
  uint32_t device;
  BufferRecord buffer;
};
static_assert(sizeof(CheckpointEntry) == 72);

// DROPPED (16 B): 0 process u32 | 4 device u32 | 8 count u64 (events lost since the last one)
struct DroppedRecord {
  uint32_t process;
  uint32_t device;
  uint64_t count;
};
static_assert(sizeof(DroppedRecord) == 16);

// PROBLEM (16 B): 0 process u32 | 4 code u32 | 8 count u64 (new reports of that kind)
enum class ProblemCode : uint32_t {
  SlabOverflow = 1,
  UnknownFrees = 2,
  DuplicateAllocs = 3,
  InvalidCalls = 4,
  CbOverflow = 5,
};
inline constexpr uint32_t kMaxProblemCode = 5;

struct ProblemRecord {
  uint32_t process;
  uint32_t code;
  uint64_t count;
};
static_assert(sizeof(ProblemRecord) == 16);

// PROCESS_END (8 B): 0 process u32 | 4 live_buffers u32 (outstanding when it left: leaks)
struct ProcessEndRecord {
  uint32_t process;
  uint32_t live_buffers;
};
static_assert(sizeof(ProcessEndRecord) == 8);

}  // namespace ttmem::protocol::record
