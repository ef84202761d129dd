/*
 * ttmem client API (C ABI).
 *
 * A runtime reports every device buffer and circular-buffer allocation and free through these
 * calls. They are cheap enough to leave on in production: after the first call of a process the
 * hot path makes no system call and no heap allocation, never blocks on a reader, and never
 * fails the caller. State lives in a per-process shared-memory segment that any ttmem collector
 * (the `ttmem` CLI, `ttmemd`, the Python module) reads.
 *
 * Contract for every call:
 *   - it never aborts, throws or blocks on another process;
 *   - it returns TTMEM_OK, TTMEM_DISABLED (tracking is off: nothing to do), or a negative
 *     ttmem_status saying why the report was not recorded; the caller may ignore the result;
 *   - strings are copied (interned) before the call returns.
 *
 * If the segment cannot be created (TTMEM_DIR unusable or full, or a file-size limit below the
 * segment size), tracking turns off for the process, every call returns TTMEM_DISABLED, and one
 * line on stderr (and ttmem_setup_message()) says why and what to do.
 *
 * Environment (read once, on the first call):
 *   TTMEM_DISABLE=1          turn tracking off for this process
 *   TTMEM_DIR=PATH           segment directory (default /dev/shm/ttmem-<uid>)
 *   TTMEM_MAX_BUFFERS=N      live-buffer slab capacity (default 262144)
 *   TTMEM_RING_EVENTS=N      per-device event-ring capacity, rounded to a power of two
 *                            (default 8192)
 *   TTMEM_GROUP=GROUP        name or gid of a group whose members may read this process's
 *                            segment (directory set-gid, g+rx; segment 0640). Unset: owner only.
 *                            A value that cannot be honoured leaves the segment owner-only; see
 *                            ttmem_setup_message().
 */
#ifndef TTMEM_TTMEM_H
#define TTMEM_TTMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TTMEM_EXPORT __attribute__((visibility("default")))
#else
#define TTMEM_EXPORT
#endif

#define TTMEM_API_VERSION 1

/* The number of devices a process can register: logical ids 0..63. */
#define TTMEM_MAX_DEVICES 64

/* Memory kinds. 0..4 are tt-metal's BufferType values; CB is circular-buffer space. */
typedef enum ttmem_kind {
  TTMEM_KIND_DRAM = 0,
  TTMEM_KIND_L1 = 1,
  TTMEM_KIND_SYSTEM_MEMORY = 2,
  TTMEM_KIND_L1_SMALL = 3,
  TTMEM_KIND_TRACE = 4,
  TTMEM_KIND_CB = 5,
  TTMEM_KIND_COUNT = 6
} ttmem_kind;

typedef enum ttmem_arch {
  TTMEM_ARCH_UNKNOWN = 0,
  TTMEM_ARCH_GRAYSKULL = 1,
  TTMEM_ARCH_WORMHOLE_B0 = 2,
  TTMEM_ARCH_BLACKHOLE = 3
} ttmem_arch;

/* tt-metal's TensorMemoryLayout values (SINGLE_BANK=1 existed in older versions). */
typedef enum ttmem_layout {
  TTMEM_LAYOUT_INTERLEAVED = 0,
  TTMEM_LAYOUT_SINGLE_BANK = 1,
  TTMEM_LAYOUT_HEIGHT_SHARDED = 2,
  TTMEM_LAYOUT_WIDTH_SHARDED = 3,
  TTMEM_LAYOUT_BLOCK_SHARDED = 4,
  TTMEM_LAYOUT_ND_SHARDED = 5
} ttmem_layout;

typedef enum ttmem_status {
  TTMEM_OK = 0,
  TTMEM_DISABLED = 1,      /* tracking is off (TTMEM_DISABLE, or set-up failed) */
  TTMEM_EINVAL = -1,       /* a field is out of range; nothing recorded */
  TTMEM_ENODEV = -2,       /* the device was not registered */
  TTMEM_EFULL = -3,        /* the live-buffer slab is full; counted as overflow */
  TTMEM_ENOENT = -4,       /* free of a buffer id that is not live (counted), or of a program
                              with no CBs on the device (not counted) */
  TTMEM_EIO = -5           /* the segment could not be created; tracking disabled */
} ttmem_status;

/* Geometry of one memory kind on a device. For banked kinds every bank holds the same relative
 * address range [bank_base, bank_base + bank_size); capacity is normally num_banks * bank_size. */
typedef struct ttmem_kind_geometry {
  uint64_t capacity;  /* bytes over all banks */
  uint64_t bank_size; /* allocatable bytes per bank */
  uint64_t bank_base; /* lowest allocatable address in a bank */
  uint32_t num_banks;
  uint32_t alignment; /* allocation alignment in bytes (0: unknown) */
} ttmem_kind_geometry;

typedef struct ttmem_device_desc {
  uint32_t struct_size;  /* sizeof(ttmem_device_desc): lets the ABI grow */
  uint32_t logical_id;   /* 0 .. TTMEM_MAX_DEVICES-1; the id used by the other calls */
  uint64_t chip_id;      /* stable unique chip id (survives TT_VISIBLE_DEVICES renumbering) */
  uint32_t arch;         /* ttmem_arch */
  uint16_t grid_x;       /* compute grid */
  uint16_t grid_y;
  uint64_t l1_per_core;  /* worker L1 bytes per core */
  uint64_t unreserved_base; /* first L1 address after firmware: CBs start here */
  uint64_t trace_region_size;
  uint64_t l1_small_size;
  ttmem_kind_geometry kinds[TTMEM_KIND_COUNT];
  const char* board;     /* e.g. "n300", "p150"; may be NULL */
} ttmem_device_desc;

typedef struct ttmem_buffer_desc {
  uint32_t struct_size;  /* sizeof(ttmem_buffer_desc) */
  uint32_t device;       /* logical id given at registration */
  uint64_t buffer_id;    /* the caller's unique id (tt-metal: Buffer::unique_id()) */
  uint32_t kind;         /* ttmem_kind, DRAM..TRACE */
  uint32_t layout;       /* ttmem_layout */
  uint64_t address;      /* relative address, the same in every bank */
  uint64_t size;         /* requested bytes */
  uint64_t page_size;
  uint64_t size_per_bank; /* 0: derived as ceil(pages / banks) * aligned page size */
  uint32_t num_banks;    /* banks (interleaved) or shards (sharded) */
  uint32_t num_cores;
  const char* tag;       /* NULL: the innermost op of the calling thread */
} ttmem_buffer_desc;

/* An inclusive rectangle of cores, as tt-metal's CoreRange. */
typedef struct ttmem_core_range {
  uint16_t x0, y0, x1, y1;
} ttmem_core_range;

/* Register (or re-register) a device. Must precede reports for that device. */
TTMEM_EXPORT int ttmem_register_device(const ttmem_device_desc* desc);

/* A buffer was allocated. Identity is (this process, device, buffer_id), never the address.
 * TTMEM_EINVAL (counted as an invalid call, nothing recorded) when its size, page size,
 * size_per_bank or reserved range (size_per_bank x the kind's banks) exceeds 1 TiB, or when
 * address + size or address + size_per_bank passes 2^64. */
TTMEM_EXPORT int ttmem_buffer_alloc(const ttmem_buffer_desc* desc);

/* A buffer was freed. */
TTMEM_EXPORT int ttmem_buffer_free(uint32_t device, uint64_t buffer_id);

/* A program's circular buffer was allocated at `address` with `size_per_core` bytes on every core
 * of the core-range set. A device holds the CB sets of every live program at once (tt-metal keeps
 * each cached program's CBs allocated); the sets overlap in address space, so readers show the
 * highest CB end among them, not their sum. Calls with the same `program_id` build one set. */
TTMEM_EXPORT int ttmem_cb_alloc(uint32_t device, const ttmem_core_range* ranges, size_t num_ranges,
                                uint64_t address, uint64_t size_per_core, uint64_t program_id);

/* One program's CB set on the device is gone (tt-metal: the program was destroyed). Returns
 * TTMEM_ENOENT when the program has no CBs on the device. */
TTMEM_EXPORT int ttmem_cb_free_program(uint32_t device, uint64_t program_id);

/* Every program's CB set on the device is gone (the device closed, or its program cache was
 * cleared). */
TTMEM_EXPORT int ttmem_cb_free_all(uint32_t device);

/* Per-thread op stack: the innermost op names what this thread allocates when no tag is given. */
TTMEM_EXPORT int ttmem_op_push(const char* name);
TTMEM_EXPORT int ttmem_op_pop(void);

/* 1 when reports are being recorded, 0 otherwise (starts tracking on first use). */
TTMEM_EXPORT int ttmem_enabled(void);

/* A short, constant description of a ttmem_status value. */
TTMEM_EXPORT const char* ttmem_status_string(int status);

/* Why set-up did not go as configured (an unusable TTMEM_GROUP or TTMEM_DIR, a segment that
 * could not be created), as a sentence saying what to do; NULL when it did. Also written once to
 * stderr, prefixed "ttmem: ". */
TTMEM_EXPORT const char* ttmem_setup_message(void);

/* Path of this process's segment, or NULL when there is none (yet). */
TTMEM_EXPORT const char* ttmem_segment_path(void);

/* This process's peaks, for test harnesses (the pytest plugin's limit_device_memory): after
 * ttmem_peak_reset(), ttmem_peak() gives the most bytes the process held reserved at one moment
 * on `device` in `kind` (DRAM..TRACE; CB sets overlap, so theirs is no figure: TTMEM_EINVAL);
 * before the first reset, since the device was registered. Private to the process: readers of
 * the segment keep seeing its lifetime peak. */
TTMEM_EXPORT int ttmem_peak_reset(void);
TTMEM_EXPORT int ttmem_peak(uint32_t device, uint32_t kind, uint64_t* bytes);

#ifdef __cplusplus
}
#endif

#endif /* TTMEM_TTMEM_H */
