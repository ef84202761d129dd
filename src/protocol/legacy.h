// The AllocMessage protocol of tt-metal's allocation-server prototype (its
// `memory_utilization_monitor` programming example: allocation_server_poc, its clients and
// allocation_monitor_client), spoken by ttmemd's legacy ingest: the one definition of its byte
// layouts (mirrored in docs/protocol.md).
//
// A Unix stream socket (default /tmp/tt_allocation_server.sock) carries one fixed-size struct
// per message, little-endian, no header and no length. Three generations of the struct exist,
// 72, 112 and 144 bytes; a connection uses one of them throughout. Every field is naturally
// aligned, so the structs need no packing; static_asserts pin every offset.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace ttmem::protocol::legacy {

inline constexpr const char* kDefaultSocketPath = "/tmp/tt_allocation_server.sock";

enum class MessageType : uint8_t {
  Alloc = 1,
  Free = 2,
  Query = 3,
  Response = 4,
  DumpRemaining = 5,
  DeviceInfoQuery = 6,
  DeviceInfoResponse = 7,
  CbAlloc = 8,
  CbFree = 9,
  KernelLoad = 10,
  KernelUnload = 11,
  DumpKernels = 12,
  // ttmem's own request, numbered well away from the prototype's: "which ttmemd is this?". The
  // reply (ServerUrlResponse, in the connection's form) carries the daemon's HTTP URL, NUL-padded,
  // in the bytes after the head, so `ttmem top` can find a running ttmemd through the socket the
  // way the prototype's monitor found its server. The prototype's server ignores unknown types:
  // a probe must time out rather than wait for an answer.
  ServerUrlQuery = 100,
  ServerUrlResponse = 101,
};
inline constexpr uint8_t kMinType = 1;
inline constexpr uint8_t kMaxType = 12;

inline constexpr bool is_known_type(uint8_t type) {
  return (type >= kMinType && type <= kMaxType) || type == uint8_t(MessageType::ServerUrlQuery) ||
         type == uint8_t(MessageType::ServerUrlResponse);
}

// The prototype's server refused sizes above 100 GB; ttmemd refuses them too where it knows no
// capacity for the device.
inline constexpr uint64_t kMaxSizeOfUnknownDevice = 100ull << 30;

// buffer_type follows tt-metal's BufferType: DRAM=0, L1=1, SYSTEM_MEMORY=2, L1_SMALL=3, TRACE=4.
inline constexpr uint8_t kMaxBufferType = 4;

// ---------------------------------------------------------------------------------------------
// The first 40 bytes, common to every form:
//
//   0 type u8 | 1 pad[3] | 4 device_id i32 | 8 size u64 | 16 buffer_type u8 | 17 pad[3]
//  20 process_id i32 | 24 buffer_id u64 (the device address) | 32 timestamp u64
// ---------------------------------------------------------------------------------------------
struct MessageHead {
  uint8_t type;
  uint8_t pad0[3];
  int32_t device_id;
  uint64_t size;
  uint8_t buffer_type;
  uint8_t pad1[3];
  int32_t process_id;
  uint64_t buffer_id;
  uint64_t timestamp;
};
static_assert(sizeof(MessageHead) == 40);
static_assert(offsetof(MessageHead, device_id) == 4);
static_assert(offsetof(MessageHead, buffer_type) == 16);
static_assert(offsetof(MessageHead, process_id) == 20);
static_assert(offsetof(MessageHead, buffer_id) == 24);

// ---------------------------------------------------------------------------------------------
// 72-byte form: head, then the counters a RESPONSE fills in.
//
//  40 dram_allocated u64 | 48 l1_allocated u64 | 56 l1_small_allocated u64
//  64 trace_allocated u64
// ---------------------------------------------------------------------------------------------
struct Message72 {
  MessageHead head;
  uint64_t dram_allocated;
  uint64_t l1_allocated;
  uint64_t l1_small_allocated;
  uint64_t trace_allocated;
};
static_assert(sizeof(Message72) == 72);

// Device facts a DEVICE_INFO_RESPONSE carries (112- and 144-byte forms).
struct DeviceInfo {
  uint64_t total_dram_size;
  uint64_t total_l1_size;
  uint32_t arch_type;
  uint32_t num_dram_channels;
  uint32_t dram_size_per_channel;
  uint32_t l1_size_per_core;
  uint32_t is_available;
  uint32_t num_devices;
};
static_assert(sizeof(DeviceInfo) == 40);

// ---------------------------------------------------------------------------------------------
// 112-byte form: the 72 bytes, then
//
//  72 total_dram_size u64 | 80 total_l1_size u64 | 88 arch_type u32 | 92 num_dram_channels u32
//  96 dram_size_per_channel u32 | 100 l1_size_per_core u32 | 104 is_available u32
// 108 num_devices u32
// ---------------------------------------------------------------------------------------------
struct Message112 {
  Message72 base;
  DeviceInfo info;
};
static_assert(sizeof(Message112) == 112);
static_assert(offsetof(Message112, info) == 72);

// ---------------------------------------------------------------------------------------------
// 144-byte form: head, then
//
//  40 dram u64 | 48 l1 u64 | 56 l1_small u64 | 64 trace u64 | 72 cb_allocated u64
//  80 kernel_allocated u64 | 88 DeviceInfo (40 B, as above) up to 128
// 128 ringbuffer_total_size u32 | 132 ringbuffer_used_bytes u32 | 136 ringbuffer_num_programs u32
// 140 pad u32
// ---------------------------------------------------------------------------------------------
struct Message144 {
  MessageHead head;
  uint64_t dram_allocated;
  uint64_t l1_allocated;
  uint64_t l1_small_allocated;
  uint64_t trace_allocated;
  uint64_t cb_allocated;
  uint64_t kernel_allocated;
  DeviceInfo info;
  uint32_t ringbuffer_total_size;
  uint32_t ringbuffer_used_bytes;
  uint32_t ringbuffer_num_programs;
  uint32_t pad;
};
static_assert(sizeof(Message144) == 144);
static_assert(offsetof(Message144, cb_allocated) == 72);
static_assert(offsetof(Message144, info) == 88);
static_assert(offsetof(Message144, ringbuffer_total_size) == 128);

inline constexpr bool is_form(size_t n) { return n == 72 || n == 112 || n == 144; }

// Form-independent view of one message.
struct Message {
  MessageHead head{};
  uint64_t dram = 0, l1 = 0, l1_small = 0, trace = 0, cb = 0, kernel = 0;
  DeviceInfo info{};
  uint32_t ringbuffer_total_size = 0, ringbuffer_used_bytes = 0, ringbuffer_num_programs = 0;
};

// A request or report as a client sends it; every other field zero.
inline Message request(MessageType type, int32_t device, uint64_t size = 0, uint8_t buffer_type = 0,
                       uint64_t address = 0, int32_t process_id = 0) {
  Message m;
  m.head.type = uint8_t(type);
  m.head.device_id = device;
  m.head.size = size;
  m.head.buffer_type = buffer_type;
  m.head.process_id = process_id;
  m.head.buffer_id = address;
  return m;
}

// Whether 4 bytes at `p` can start a message: a known type and zero padding. Decoding never
// depends on it; it is what form detection and resynchronisation look at.
inline bool plausible_head(const uint8_t* p) {
  return is_known_type(p[0]) && p[1] == 0 && p[2] == 0 && p[3] == 0;
}

// Decodes `form` bytes at `p` (the caller guarantees the length). Fields a form lacks are zero.
inline Message decode(const uint8_t* p, size_t form) {
  Message m;
  if (form == 144) {
    Message144 x;
    std::memcpy(&x, p, sizeof x);
    m.head = x.head;
    m.dram = x.dram_allocated;
    m.l1 = x.l1_allocated;
    m.l1_small = x.l1_small_allocated;
    m.trace = x.trace_allocated;
    m.cb = x.cb_allocated;
    m.kernel = x.kernel_allocated;
    m.info = x.info;
    m.ringbuffer_total_size = x.ringbuffer_total_size;
    m.ringbuffer_used_bytes = x.ringbuffer_used_bytes;
    m.ringbuffer_num_programs = x.ringbuffer_num_programs;
    return m;
  }
  Message112 x{};
  std::memcpy(&x, p, form == 112 ? sizeof(Message112) : sizeof(Message72));
  m.head = x.base.head;
  m.dram = x.base.dram_allocated;
  m.l1 = x.base.l1_allocated;
  m.l1_small = x.base.l1_small_allocated;
  m.trace = x.base.trace_allocated;
  if (form == 112) m.info = x.info;
  return m;
}

// Encodes `m` in `form` into `out` (form bytes); fields the form lacks are dropped.
inline void encode(const Message& m, size_t form, uint8_t* out) {
  if (form == 144) {
    Message144 x{};
    x.head = m.head;
    x.dram_allocated = m.dram;
    x.l1_allocated = m.l1;
    x.l1_small_allocated = m.l1_small;
    x.trace_allocated = m.trace;
    x.cb_allocated = m.cb;
    x.kernel_allocated = m.kernel;
    x.info = m.info;
    x.ringbuffer_total_size = m.ringbuffer_total_size;
    x.ringbuffer_used_bytes = m.ringbuffer_used_bytes;
    x.ringbuffer_num_programs = m.ringbuffer_num_programs;
    std::memcpy(out, &x, sizeof x);
    return;
  }
  Message112 x{};
  x.base.head = m.head;
  x.base.dram_allocated = m.dram;
  x.base.l1_allocated = m.l1;
  x.base.l1_small_allocated = m.l1_small;
  x.base.trace_allocated = m.trace;
  x.info = m.info;
  std::memcpy(out, &x, form == 112 ? sizeof(Message112) : sizeof(Message72));
}

// The URL a ServerUrlResponse carries: the bytes after the head of a `form`-byte message, up to
// the first NUL. At most form - 40 - 1 bytes fit (31 in the 72-byte form, 103 in the 144-byte).
inline constexpr size_t url_capacity(size_t form) { return form - sizeof(MessageHead) - 1; }

inline void encode_url(const MessageHead& head, const char* url, size_t form, uint8_t* out) {
  std::memset(out, 0, form);
  std::memcpy(out, &head, sizeof head);
  size_t n = std::min(std::strlen(url), url_capacity(form));
  std::memcpy(out + sizeof head, url, n);
}

inline std::string decode_url(const uint8_t* p, size_t form) {
  const char* text = reinterpret_cast<const char*>(p + sizeof(MessageHead));
  return std::string(text, strnlen(text, form - sizeof(MessageHead)));
}

}  // namespace ttmem::protocol::legacy
