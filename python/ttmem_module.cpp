// _ttmem: the compiled half of the ttmem Python package. Thin on purpose: integers in, statuses
// out for the client calls; plain dicts and lists (the JSON forms of `ttmem ... --json`) for the
// read side. Names, defaults, errors and the op context manager live in ttmem/__init__.py.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <array>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "collector/collector.h"
#include "collector/json.h"
#include "ttmem/ttmem.h"

namespace py = pybind11;

namespace {

using KindTuple = std::tuple<uint64_t, uint64_t, uint64_t, uint32_t, uint32_t>;
using RangeTuple = std::tuple<uint16_t, uint16_t, uint16_t, uint16_t>;

// nlohmann::json → Python objects (dict, list, int, float, str, bool, None).
py::object to_python(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: {
      py::dict d;
      for (const auto& [k, v] : j.items()) d[py::str(k)] = to_python(v);
      return d;
    }
    case nlohmann::json::value_t::array: {
      py::list l;
      for (const auto& v : j) l.append(to_python(v));
      return l;
    }
    case nlohmann::json::value_t::string: return py::str(j.get_ref<const std::string&>());
    case nlohmann::json::value_t::boolean: return py::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return py::int_(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return py::int_(j.get<uint64_t>());
    case nlohmann::json::value_t::number_float: return py::float_(j.get<double>());
    default: return py::none();
  }
}

// A C string of the client API as Python's str, or None for NULL.
std::optional<std::string> optional_text(const char* text) {
  if (text == nullptr) return std::nullopt;
  return std::string(text);
}

// One collector pass over options.dir ("" = $TTMEM_DIR, else /dev/shm/ttmem-<uid>). Throws
// std::runtime_error (RuntimeError in Python) when the directory cannot be used.
ttmem::collector::Snapshot take_snapshot(const ttmem::collector::CollectorOptions& options) {
  py::gil_scoped_release unlocked;
  ttmem::collector::CollectorOptions one_shot = options;
  one_shot.watch = false;  // one refresh, then the collector goes
  ttmem::collector::Collector c(one_shot);
  c.refresh();
  return c.snapshot();
}

py::dict status(const std::string& dir) {
  return to_python(ttmem::collector::status_json(
      take_snapshot({.dir = dir, .list_buffers = false, .leak_records = false})));
}

py::list buffers(const std::string& dir, std::optional<int> pid, bool reap) {
  const ttmem::collector::Snapshot s =
      take_snapshot({.dir = dir, .reap = reap, .leak_records = false});
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& b : s.buffers) {
    if (!pid || b.pid == *pid) arr.push_back(ttmem::collector::to_json(b));
  }
  return to_python(arr);
}

py::list leaks(const std::string& dir) {
  const ttmem::collector::Snapshot s = take_snapshot({.dir = dir, .list_buffers = false});
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& l : s.leaks) arr.push_back(ttmem::collector::to_json(l));
  return to_python(arr);
}

int register_device(uint32_t logical_id, uint64_t chip_id, uint32_t arch, uint16_t grid_x,
                    uint16_t grid_y, uint64_t l1_per_core, uint64_t unreserved_base,
                    uint64_t trace_region_size, uint64_t l1_small_size,
                    const std::vector<KindTuple>& kinds, std::optional<std::string> board) {
  if (kinds.size() > TTMEM_KIND_COUNT) throw py::value_error("more kinds than ttmem knows");
  ttmem_device_desc d{};
  d.struct_size = sizeof d;
  d.logical_id = logical_id;
  d.chip_id = chip_id;
  d.arch = arch;
  d.grid_x = grid_x;
  d.grid_y = grid_y;
  d.l1_per_core = l1_per_core;
  d.unreserved_base = unreserved_base;
  d.trace_region_size = trace_region_size;
  d.l1_small_size = l1_small_size;
  for (size_t k = 0; k < kinds.size(); ++k) {
    const auto& [capacity, bank_size, bank_base, banks, alignment] = kinds[k];
    d.kinds[k] = {capacity, bank_size, bank_base, banks, alignment};
  }
  d.board = board ? board->c_str() : nullptr;  // copied by the client before it returns
  return ttmem_register_device(&d);
}

int buffer_alloc(uint32_t device, uint64_t buffer_id, uint32_t kind, uint64_t address,
                 uint64_t size, uint64_t page_size, uint64_t size_per_bank, uint32_t num_banks,
                 uint32_t num_cores, uint32_t layout, std::optional<std::string> tag) {
  ttmem_buffer_desc b{};
  b.struct_size = sizeof b;
  b.device = device;
  b.buffer_id = buffer_id;
  b.kind = kind;
  b.layout = layout;
  b.address = address;
  b.size = size;
  b.page_size = page_size;
  b.size_per_bank = size_per_bank;
  b.num_banks = num_banks;
  b.num_cores = num_cores;
  b.tag = tag ? tag->c_str() : nullptr;
  return ttmem_buffer_alloc(&b);
}

int cb_alloc(uint32_t device, const std::vector<RangeTuple>& ranges, uint64_t address,
             uint64_t size_per_core, uint64_t program_id) {
  std::vector<ttmem_core_range> r;
  r.reserve(ranges.size());
  for (const auto& [x0, y0, x1, y1] : ranges) r.push_back({x0, y0, x1, y1});
  return ttmem_cb_alloc(device, r.data(), r.size(), address, size_per_core, program_id);
}

// (device, kind, bytes) for every registered device and every kind ttmem_peak() answers.
std::vector<std::tuple<uint32_t, uint32_t, uint64_t>> peaks() {
  std::vector<std::tuple<uint32_t, uint32_t, uint64_t>> out;
  for (uint32_t device = 0; device < TTMEM_MAX_DEVICES; ++device) {
    for (uint32_t kind = 0; kind < TTMEM_KIND_CB; ++kind) {
      uint64_t bytes = 0;
      if (ttmem_peak(device, kind, &bytes) != TTMEM_OK) break;
      out.emplace_back(device, kind, bytes);
    }
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_ttmem, m) {
  m.doc() = "ttmem client and collector bindings (use the `ttmem` package)";
  m.attr("API_VERSION") = TTMEM_API_VERSION;
  m.attr("MAX_DEVICES") = TTMEM_MAX_DEVICES;

  m.def("register_device", &register_device);
  m.def("buffer_alloc", &buffer_alloc);
  m.def("buffer_free", &ttmem_buffer_free);
  m.def("cb_alloc", &cb_alloc);
  m.def("cb_free_program", &ttmem_cb_free_program);
  m.def("cb_free_all", &ttmem_cb_free_all);
  m.def("op_push", [](const std::string& name) { return ttmem_op_push(name.c_str()); });
  m.def("op_pop", &ttmem_op_pop);
  m.def("enabled", [] { return ttmem_enabled() != 0; });
  m.def("status_string", [](int st) { return std::string(ttmem_status_string(st)); });
  m.def("segment_path", [] { return optional_text(ttmem_segment_path()); });
  m.def("reset_peaks", &ttmem_peak_reset);
  m.def("peaks", &peaks);
  m.def("setup_message", [] { return optional_text(ttmem_setup_message()); });

  m.def("status", &status, py::arg("dir"));
  m.def("buffers", &buffers, py::arg("dir"), py::arg("pid") = py::none(),
        py::arg("reap") = true);
  m.def("leaks", &leaks, py::arg("dir"));
}
