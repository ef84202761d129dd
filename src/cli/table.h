// A plain text table with columns sized to their widest cell.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace ttmem::cli {

class Table {
 public:
  // right_aligned[i]: column i holds figures.
  Table(std::vector<std::string> header, std::vector<bool> right_aligned)
      : right_(std::move(right_aligned)) {
    rows_.push_back(std::move(header));
  }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t rows() const { return rows_.size() - 1; }

  void print(std::FILE* out = stdout) const {
    std::vector<size_t> width(rows_[0].size(), 0);
    for (const auto& r : rows_) {
      for (size_t i = 0; i < r.size() && i < width.size(); ++i) {
        width[i] = std::max(width[i], r[i].size());
      }
    }
    for (const auto& r : rows_) {
      std::string line;
      for (size_t i = 0; i < r.size() && i < width.size(); ++i) {
        bool last = i + 1 == r.size();
        std::string pad(width[i] - r[i].size(), ' ');
        bool right = i < right_.size() && right_[i];
        line += right ? pad + r[i] : (last ? r[i] : r[i] + pad);
        if (!last) line += "  ";
      }
      std::fprintf(out, "%s\n", line.c_str());
    }
  }

 private:
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace ttmem::cli
