// A read-only JSON document for the answers ttmem reads back from a ttmemd (`ttmem top` via a
// daemon, `ttmem --server`, `ttmem diff`).
//
// nlohmann::json builds a tree of maps and strings, a heap allocation per key and value, and its
// lexer copies every character it reads: a Galaxy host's 118 KB status took 1.7 ms to parse,
// half of what `ttmem top` spent per refresh showing a ttmemd's overview. Here the values of a
// document lie in one array, each container's elements side by side, and strings without
// escapes point into the text. The grammar is strict RFC 8259 as nlohmann's is (strings must be
// valid UTF-8, surrogates paired, no trailing text), and the input is untrusted: any bytes give
// either a document or nlohmann::json::parse_error, never unbounded recursion (the parser keeps
// its own stack, and refuses nesting deeper than 10,000 levels). fuzz/json_reader_fuzzer.cpp
// holds it to nlohmann's verdict and values.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace ttmem::collector {

class JsonValue {
 public:
  enum class Type : uint8_t { Null, Boolean, Unsigned, Integer, Float, String, Array, Object };

  JsonValue() = default;  // null

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_boolean() const { return type_ == Type::Boolean; }
  // As nlohmann's: a whole number is "integer" whether or not it has a sign, and "unsigned" when
  // it has none.
  bool is_number_unsigned() const { return type_ == Type::Unsigned; }
  bool is_number_integer() const { return type_ == Type::Unsigned || type_ == Type::Integer; }
  bool is_number_float() const { return type_ == Type::Float; }
  bool is_number() const { return is_number_integer() || is_number_float(); }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // The value as T (bool, uint64_t, int64_t, double or std::string); a value of another type
  // throws nlohmann::json::type_error, as nlohmann's get<T>() does. Numbers convert among
  // themselves as there.
  template <class T>
  T get() const;
  std::string_view string_view() const;  // a string's text; throws type_error for others

  // An array's elements or an object's member values, in document order; nothing for scalars.
  size_t size() const { return is_array() || is_object() ? count_ : 0; }
  bool empty() const { return size() == 0; }
  const JsonValue* begin() const { return children_; }
  const JsonValue* end() const { return children_ + size(); }
  const JsonValue& operator[](size_t i) const { return children_[i]; }
  // The member's name, for a value of an object.
  std::string_view key() const { return key_; }
  // The member named `name` (the last one, as nlohmann keeps it, when a name repeats), or null
  // when there is none or this is not an object.
  const JsonValue* find(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name) != nullptr; }

 private:
  friend class JsonParser;
  friend class JsonDocument;

  Type type_ = Type::Null;
  uint32_t count_ = 0;
  union {
    bool boolean;
    uint64_t unsigned_number;
    int64_t integer_number;
    double float_number;
    size_t first_child;  // while parsing: where the children start in the document's array
  } value_{};
  std::string_view text_;  // a string's text
  std::string_view key_;
  const JsonValue* children_ = nullptr;
};

class JsonDocument {
 public:
  JsonDocument() = default;  // the document `null`
  // Parses `text`, which the document keeps (its strings point into it; pass an answer's body
  // by std::move, and it is not copied). Throws nlohmann::json::parse_error saying where the
  // text stops being JSON.
  static JsonDocument parse(std::string text);

  const JsonValue& root() const { return root_; }

 private:
  friend class JsonParser;
  std::unique_ptr<std::string> text_;      // on the heap: a move leaves the values' views valid
  std::vector<JsonValue> values_;          // every value but the root, children side by side
  std::deque<std::string> unescaped_;      // strings with escapes, decoded (a deque keeps them put)
  JsonValue root_;
};

// The same value as nlohmann::json, for comparing the two parsers (the tests and the fuzz
// target). Recurses as deep as the value nests.
nlohmann::json to_nlohmann(const JsonValue& v);

}  // namespace ttmem::collector
