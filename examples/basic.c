/* The smallest ttmem client: one Wormhole-like device, a few buffers, a CB set, then frees.
 * Run it, and in another terminal: `ttmem status` or `ttmem buffers`.
 * Usage: ttmem_example_basic [seconds-to-hold]                                              */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ttmem/ttmem.h"

int main(int argc, char** argv) {
  int hold = argc > 1 ? atoi(argv[1]) : 5;

  ttmem_device_desc dev = {0};
  dev.struct_size = sizeof dev;
  dev.logical_id = 0;
  dev.chip_id = 0x1001;
  dev.arch = TTMEM_ARCH_WORMHOLE_B0;
  dev.grid_x = 8;
  dev.grid_y = 8;
  dev.l1_per_core = 1499136;
  dev.unreserved_base = 102400;
  dev.board = "n150";
  dev.kinds[TTMEM_KIND_DRAM] = (ttmem_kind_geometry){12ull << 30, 1ull << 30, 0, 12, 32};
  dev.kinds[TTMEM_KIND_L1] =
      (ttmem_kind_geometry){64ull * (1499136 - 102400), 1499136 - 102400, 102400, 64, 16};
  dev.kinds[TTMEM_KIND_CB] =
      (ttmem_kind_geometry){64ull * (1499136 - 102400), 1499136 - 102400, 102400, 64, 32};
  if (ttmem_register_device(&dev) != TTMEM_OK) {
    fprintf(stderr, "tracking is off (%s)\n", ttmem_status_string(ttmem_enabled() ? 0 : 1));
  }

  ttmem_op_push("ttnn::from_torch");
  for (uint64_t id = 1; id <= 4; ++id) {
    ttmem_buffer_desc b = {0};
    b.struct_size = sizeof b;
    b.device = 0;
    b.buffer_id = id;
    b.kind = TTMEM_KIND_DRAM;
    b.address = (id - 1) * (8u << 20);
    b.size = 64u << 20;
    b.page_size = 2048;
    b.num_banks = 12;
    ttmem_buffer_alloc(&b);
  }
  ttmem_op_pop();

  ttmem_op_push("ttnn::matmul");
  ttmem_core_range grid = {0, 0, 7, 7};
  ttmem_cb_alloc(0, &grid, 1, 102400, 65536, 1);
  ttmem_buffer_desc act = {0};
  act.struct_size = sizeof act;
  act.device = 0;
  act.buffer_id = 100;
  act.kind = TTMEM_KIND_L1;
  act.layout = TTMEM_LAYOUT_WIDTH_SHARDED;
  act.address = 1499136 - 32768;
  act.size = 64 * 32768;
  act.size_per_bank = 32768;
  act.num_banks = 64;
  act.num_cores = 64;
  ttmem_buffer_alloc(&act);
  ttmem_op_pop();

  printf("pid %d holding 4 DRAM buffers, 1 L1 buffer and a CB set for %d s (segment %s)\n",
         (int)getpid(), hold, ttmem_segment_path() ? ttmem_segment_path() : "none");
  fflush(stdout);
  sleep((unsigned)hold);

  ttmem_cb_free_all(0);
  ttmem_buffer_free(0, 100);
  for (uint64_t id = 1; id <= 4; ++id) ttmem_buffer_free(0, id);
  return 0;
}
