// `ttmem report`: a recording as one self-contained HTML page (no network: data, script and
// styles inline; the charts are SVG drawn by the page's own script, no chart library).
#pragma once

#include <string>

#include "collector/recording.h"

namespace ttmem::report {

struct ReportOptions {
  std::string title;          // shown at the top: usually the recording's file name
  size_t timeline_points = 600;  // time buckets per chart; each keeps its exact peak
  size_t ops_per_chart = 7;   // op tags stacked by name; the rest is "other ops"
  size_t peak_buffer_rows = 40;  // live buffers listed at each device's peak
};

// The whole page. Timelines are downsampled into buckets: each bucket keeps the moment its
// total was highest and the state at its end, so every peak is drawn at its exact height.
std::string render_html(const collector::Recording& r, const ReportOptions& options);

}  // namespace ttmem::report
