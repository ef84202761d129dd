#include "collector/json_reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ttmem::collector {

namespace {

using nlohmann::json;

[[noreturn]] void wrong_type(const char* wanted, JsonValue::Type type) {
  static constexpr const char* kNames[] = {"null",   "boolean", "number", "number",
                                           "number", "string",  "array",  "object"};
  throw json::type_error::create(302, fmt::format("type must be {}, but is {}", wanted,
                                                  kNames[size_t(type)]),
                                 nullptr);
}

}  // namespace

template <>
bool JsonValue::get<bool>() const {
  if (type_ != Type::Boolean) wrong_type("boolean", type_);
  return value_.boolean;
}

// Numbers convert among themselves as nlohmann's get<T>() converts them (a static_cast).
template <class T>
static T number_as(JsonValue::Type type, uint64_t u, int64_t i, double d) {
  switch (type) {
    case JsonValue::Type::Unsigned:
      return T(u);
    case JsonValue::Type::Integer:
      return T(i);
    case JsonValue::Type::Float:
      if constexpr (std::is_integral_v<T>) {
        // Out of T's range a cast is undefined; nlohmann's too. Saturate instead.
        if (!(d >= double(std::numeric_limits<T>::min()))) return std::numeric_limits<T>::min();
        if (!(d < double(std::numeric_limits<T>::max()))) return std::numeric_limits<T>::max();
      }
      return T(d);
    default:
      wrong_type("number", type);
  }
}

template <>
uint64_t JsonValue::get<uint64_t>() const {
  return number_as<uint64_t>(type_, value_.unsigned_number, value_.integer_number,
                             value_.float_number);
}
template <>
int64_t JsonValue::get<int64_t>() const {
  return number_as<int64_t>(type_, value_.unsigned_number, value_.integer_number,
                            value_.float_number);
}
template <>
double JsonValue::get<double>() const {
  return number_as<double>(type_, value_.unsigned_number, value_.integer_number,
                           value_.float_number);
}

std::string_view JsonValue::string_view() const {
  if (type_ != Type::String) wrong_type("string", type_);
  return text_;
}
template <>
std::string JsonValue::get<std::string>() const {
  return std::string(string_view());
}

const JsonValue* JsonValue::find(std::string_view name) const {
  if (type_ != Type::Object) return nullptr;
  for (size_t i = count_; i-- > 0;) {
    if (children_[i].key_ == name) return &children_[i];
  }
  return nullptr;
}

// One document's parse. Values wait on `pending_` until their container closes; then they move
// to the document's array side by side, and the container takes their place on `pending_`.
class JsonParser {
 public:
  // No answer of a ttmemd nests more than a few levels. Deeper text is refused before its
  // bookkeeping costs more than the text itself.
  static constexpr size_t kMaxDepth = 10'000;

  JsonParser(JsonDocument& doc, std::string_view text) : doc_(doc), p_(text.data()), begin_(p_),
                                                         end_(p_ + text.size()) {}

  void parse() {
    for (;;) {
      skip_space();
      std::string_view key;
      if (!open_.empty() && open_.back().object) {
        if (at_end() || *p_ != '"') fail("expected a string naming an object member");
        key = string_text();
        skip_space();
        expect(':', "expected ':' after an object member's name");
        skip_space();
      }
      if (at_end()) fail("expected a value");
      if (*p_ == '{' || *p_ == '[') {
        const bool object = *p_ == '{';
        if (open_.size() == kMaxDepth) {
          fail(fmt::format("nested deeper than {} levels", kMaxDepth));
        }
        ++p_;
        open_.push_back({object, pending_.size(), key});
        skip_space();
        if (!at_end() && *p_ == (object ? '}' : ']')) {
          ++p_;
          close();
        } else {
          continue;
        }
      } else {
        pending_.push_back(scalar());
        pending_.back().key_ = key;
      }
      // After a value: close what ends here, then take the next element, or finish.
      for (;;) {
        skip_space();
        if (open_.empty()) {
          if (!at_end()) fail("expected the end of the text after the document");
          finish();
          return;
        }
        if (at_end()) fail(open_.back().object ? "expected ',' or '}'" : "expected ',' or ']'");
        if (*p_ == ',') {
          ++p_;
          break;
        }
        if (*p_ != (open_.back().object ? '}' : ']')) {
          fail(open_.back().object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
        ++p_;
        close();
      }
    }
  }

 private:
  struct Open {
    bool object;
    size_t first;          // its first element's place in pending_
    std::string_view key;  // its own name, in an enclosing object
  };

  bool at_end() const { return p_ == end_; }
  [[noreturn]] void fail(const std::string& what) const {
    const size_t byte = size_t(p_ - begin_) + 1;
    const std::string near = at_end() ? "the end of the text"
                                      : fmt::format("byte 0x{:02x}", uint8_t(*p_));
    throw json::parse_error::create(101, byte, fmt::format("{} at {}", what, near), nullptr);
  }
  void expect(char c, const char* what) {
    if (at_end() || *p_ != c) fail(what);
    ++p_;
  }
  void skip_space() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  void close() {
    const Open open = open_.back();
    open_.pop_back();
    const size_t count = pending_.size() - open.first;
    if (count > std::numeric_limits<uint32_t>::max()) fail("too many elements");
    JsonValue container;
    container.type_ = open.object ? JsonValue::Type::Object : JsonValue::Type::Array;
    container.count_ = uint32_t(count);
    container.value_.first_child = doc_.values_.size();
    container.key_ = open.key;
    doc_.values_.insert(doc_.values_.end(), pending_.begin() + ptrdiff_t(open.first),
                        pending_.end());
    pending_.resize(open.first);
    pending_.push_back(container);
  }

  // The values' children pointers, once the array holding them no longer grows.
  void finish() {
    doc_.root_ = pending_.back();
    auto link = [this](JsonValue& v) {
      if (v.is_array() || v.is_object()) v.children_ = doc_.values_.data() + v.value_.first_child;
    };
    for (JsonValue& v : doc_.values_) link(v);
    link(doc_.root_);
  }

  JsonValue scalar() {
    JsonValue v;
    switch (*p_) {
      case '"':
        v.type_ = JsonValue::Type::String;
        v.text_ = string_text();
        return v;
      case 't':
        literal("true");
        v.type_ = JsonValue::Type::Boolean;
        v.value_.boolean = true;
        return v;
      case 'f':
        literal("false");
        v.type_ = JsonValue::Type::Boolean;
        v.value_.boolean = false;
        return v;
      case 'n':
        literal("null");
        return v;
      default:
        return number();
    }
  }

  void literal(std::string_view word) {
    if (size_t(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
      fail("expected a value");
    }
    p_ += word.size();
  }

  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
  JsonValue number() {
    const char* start = p_;
    auto digits = [this] {
      const char* from = p_;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      return p_ != from;
    };
    const bool negative = !at_end() && *p_ == '-';
    if (negative) ++p_;
    const char* whole = p_;
    if (at_end() || *p_ < '0' || *p_ > '9') fail("expected a value");
    if (*p_ == '0') {
      ++p_;
    } else {
      digits();
    }
    const char* whole_end = p_;
    bool is_float = false;
    if (!at_end() && *p_ == '.') {
      ++p_;
      if (!digits()) fail("expected a digit after '.'");
      is_float = true;
    }
    if (!at_end() && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (!at_end() && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digits()) fail("expected a digit in the exponent");
      is_float = true;
    }
    JsonValue v;
    if (!is_float) {
      uint64_t magnitude = 0;
      const auto [end, error] = std::from_chars(whole, whole_end, magnitude);
      if (error == std::errc() && end == whole_end) {
        if (!negative) {
          v.type_ = JsonValue::Type::Unsigned;
          v.value_.unsigned_number = magnitude;
          return v;
        }
        if (magnitude <= uint64_t(std::numeric_limits<int64_t>::max()) + 1) {
          v.type_ = JsonValue::Type::Integer;
          v.value_.integer_number = int64_t(0 - magnitude);
          return v;
        }
      }
      // Too large for 64 bits: a float, as nlohmann keeps it.
    }
    v.type_ = JsonValue::Type::Float;
    double d = 0;
    const auto [end, error] = std::from_chars(start, p_, d);
    if (error == std::errc::result_out_of_range) {
      // Too small for a double is zero, as strtod and nlohmann make it; too large is refused,
      // as nlohmann refuses it. Which one: the sign of the exponent.
      const std::string_view token(start, size_t(p_ - start));
      const size_t e = token.find_first_of("eE");
      if (e == std::string_view::npos || e + 1 >= token.size() || token[e + 1] != '-') {
        fail("number out of a double's range");
      }
      d = negative ? -0.0 : 0.0;
    } else if (error != std::errc() || end != p_) {
      fail("expected a number");
    }
    v.value_.float_number = d;
    return v;
  }

  // The text of the string at p_ (the opening quote), decoded: a view of the document's text
  // when it has no escapes.
  std::string_view string_text() {
    ++p_;  // "
    const char* start = p_;
    std::string* decoded = nullptr;
    for (;;) {
      if (at_end()) fail("expected '\"' to end the string");
      const unsigned char c = uint8_t(*p_);
      if (c == '"') {
        const std::string_view raw(start, size_t(p_ - start));
        ++p_;
        if (decoded == nullptr) return raw;
        return *decoded;
      }
      if (c < 0x20) fail("control characters must be escaped in a string");
      if (c == '\\') {
        if (decoded == nullptr) decoded = &doc_.unescaped_.emplace_back(start, size_t(p_ - start));
        escape(*decoded);
        continue;
      }
      const char* from = p_;
      utf8_character();
      if (decoded != nullptr) decoded->append(from, size_t(p_ - from));
    }
  }

  void escape(std::string& out) {
    ++p_;  // backslash
    if (at_end()) fail("expected an escape after '\\'");
    const char c = *p_++;
    switch (c) {
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case '/': out += '/'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default: --p_; fail("expected one of \"\\/bfnrtu after '\\'");
    }
    uint32_t code = hex4();
    if (code >= 0xDC00 && code <= 0xDFFF) fail("a low surrogate must follow a high one");
    if (code >= 0xD800 && code <= 0xDBFF) {
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') {
        fail("a high surrogate must be followed by a low one");
      }
      p_ += 2;
      const uint32_t low = hex4();
      if (low < 0xDC00 || low > 0xDFFF) fail("a high surrogate must be followed by a low one");
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    if (code < 0x80) {
      out += char(code);
    } else if (code < 0x800) {
      out += char(0xC0 | (code >> 6));
      out += char(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += char(0xE0 | (code >> 12));
      out += char(0x80 | ((code >> 6) & 0x3F));
      out += char(0x80 | (code & 0x3F));
    } else {
      out += char(0xF0 | (code >> 18));
      out += char(0x80 | ((code >> 12) & 0x3F));
      out += char(0x80 | ((code >> 6) & 0x3F));
      out += char(0x80 | (code & 0x3F));
    }
  }

  uint32_t hex4() {
    if (end_ - p_ < 4) fail("expected four hex digits after '\\u'");
    uint32_t code = 0;
    const auto [end, error] = std::from_chars(p_, p_ + 4, code, 16);
    if (error != std::errc() || end != p_ + 4) fail("expected four hex digits after '\\u'");
    p_ += 4;
    return code;
  }

  // One UTF-8 character at p_ (RFC 3629: shortest forms, no surrogates, at most U+10FFFF).
  void utf8_character() {
    const unsigned char c = uint8_t(*p_);
    if (c < 0x80) {
      ++p_;
      return;
    }
    size_t n = 0;
    unsigned char low = 0x80, high = 0xBF;  // the second byte's range
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    } else {
      fail("ill-formed UTF-8 in a string");
    }
    if (size_t(end_ - p_) <= n) fail("ill-formed UTF-8 in a string");
    for (size_t i = 1; i <= n; ++i) {
      const unsigned char b = uint8_t(p_[i]);
      if (i == 1 ? (b < low || b > high) : (b < 0x80 || b > 0xBF)) {
        p_ += i;
        fail("ill-formed UTF-8 in a string");
      }
    }
    p_ += n + 1;
  }

  JsonDocument& doc_;
  const char* p_;
  const char* begin_;
  const char* end_;
  std::vector<Open> open_;
  std::vector<JsonValue> pending_;
};

JsonDocument JsonDocument::parse(std::string text) {
  JsonDocument doc;
  doc.text_ = std::make_unique<std::string>(std::move(text));
  // A document of n bytes has at most about n/2 values; ttmemd's have one per 16 bytes or
  // fewer. Reserving that up front (to a bound: a body may be a gigabyte) spares most of the
  // array's regrowth.
  doc.values_.reserve(std::min<size_t>(doc.text_->size() / 16, size_t{1} << 20));
  JsonParser(doc, *doc.text_).parse();
  return doc;
}

json to_nlohmann(const JsonValue& v) {
  switch (v.type()) {
    case JsonValue::Type::Null:
      return nullptr;
    case JsonValue::Type::Boolean:
      return v.get<bool>();
    case JsonValue::Type::Unsigned:
      return v.get<uint64_t>();
    case JsonValue::Type::Integer:
      return v.get<int64_t>();
    case JsonValue::Type::Float:
      return v.get<double>();
    case JsonValue::Type::String:
      return v.get<std::string>();
    case JsonValue::Type::Array: {
      json out = json::array();
      for (const JsonValue& e : v) out.push_back(to_nlohmann(e));
      return out;
    }
    case JsonValue::Type::Object: {
      json out = json::object();
      for (const JsonValue& e : v) out[std::string(e.key())] = to_nlohmann(e);
      return out;
    }
  }
  return nullptr;
}

}  // namespace ttmem::collector
