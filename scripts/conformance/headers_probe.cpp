// Conformance probe: the public tt-metal headers the adapter uses must all compile with the
// include setup scripts/conformance.sh builds (pinned fmt first, never Debian's fmt 9).
#include <fmt/base.h>

#include <tt-metalium/allocator.hpp>
#include <tt-metalium/buffer.hpp>
#include <tt-metalium/circular_buffer.hpp>
#include <tt-metalium/device.hpp>
#include <tt-metalium/graph_tracking.hpp>
#include <tt-metalium/mesh_device.hpp>
#include <tt-metalium/program.hpp>

static_assert(FMT_VERSION >= 110000,
              "TT-Metalium needs fmt >= 11; Debian's /usr/include/fmt was picked");

// Names the adapter relies on exist (types only, nothing is called).
using Device = tt::tt_metal::IDevice;
using Buffer = tt::tt_metal::Buffer;
using Program = tt::tt_metal::Program;
using Processor = tt::tt_metal::IGraphProcessor;
using Tracker = tt::tt_metal::GraphTracker;
using MeshDevice = tt::tt_metal::distributed::MeshDevice;
