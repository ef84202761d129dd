// JsonDocument, the parser of a ttmemd's answers: it accepts exactly what nlohmann::json
// accepts, reads the same values, and survives what no ttmemd would send.
#include "collector/json_reader.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace ttmem::collector {
namespace {

using nlohmann::json;

// Parses `text` both ways: the two must agree on whether it is JSON and, when it is, on its
// value. Returns whether it is.
bool parses_as_nlohmann_does(const std::string& text) {
  std::optional<json> expected;
  try {
    expected = json::parse(text);
  } catch (const json::exception&) {  // parse_error, or out_of_range for 1e400
  }
  std::optional<JsonDocument> doc;
  try {
    doc = JsonDocument::parse(text);
  } catch (const json::parse_error&) {
  }
  EXPECT_EQ(doc.has_value(), expected.has_value()) << "text: " << text;
  if (doc && expected) EXPECT_EQ(to_nlohmann(doc->root()), *expected) << "text: " << text;
  return doc.has_value();
}

TEST(JsonReader, AcceptsAndRejectsWhatNlohmannDoes) {
  const std::vector<std::string> valid = {
      "null", "true", "false", "0", "-0", "1.5", "-1.5e-3", "2E+10", "\"\"", "[]", "{}",
      " \t\r\n[ 1 , 2 ,\n3 ] ", "{\"a\":{\"b\":[{},[],\"c\"]}}", "[[[[[[]]]]]]",
      "18446744073709551615", "18446744073709551616", "-9223372036854775808",
      "-9223372036854775809", "1e-400", "-1e-400", "4.9e-324",
      "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u0041\\u00e9\\u20ac\"", "\"\\ud83d\\ude00\"",
      "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", "{\"k\":1,\"k\":2}",
  };
  for (const std::string& text : valid) EXPECT_TRUE(parses_as_nlohmann_does(text)) << text;
  const std::vector<std::string> invalid = {
      "", " ", "nul", "tru", "True", "01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "[1,]",
      "[1 2]", "{\"a\"}", "{\"a\":}", "{a:1}", "{\"a\":1,}", "[", "]", "{", "}", "\"abc",
      "\"a\nb\"", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"",
      "\"\\ud800\\u0041\"", "\"\xff\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
      "\"\xe2\x82\"", "1 2", "[] []", "{}x", "[\"a\"\"b\"]", "NaN", "1e400", "-1e400",
  };
  for (const std::string& text : invalid) EXPECT_FALSE(parses_as_nlohmann_does(text)) << text;
  // nlohmann stops reading at a NUL byte, and takes what came before it. No JSON holds one
  // outside a string (where it must be escaped), so here it is an error like any other byte.
  EXPECT_NO_THROW(json::parse(std::string("[1]\0", 4)));
  EXPECT_THROW(JsonDocument::parse(std::string("[1]\0", 4)), json::parse_error);
}

TEST(JsonReader, NumbersKeepNlohmannsTypes) {
  const JsonDocument doc =
      JsonDocument::parse("[7, -7, 18446744073709551615, -9223372036854775808, 1.25, "
                          "18446744073709551616]");
  const JsonValue& a = doc.root();
  ASSERT_EQ(a.size(), 6u);
  EXPECT_TRUE(a[0].is_number_unsigned());
  EXPECT_EQ(a[0].get<uint64_t>(), 7u);
  EXPECT_TRUE(a[1].is_number_integer());
  EXPECT_FALSE(a[1].is_number_unsigned());
  EXPECT_EQ(a[1].get<int64_t>(), -7);
  EXPECT_EQ(a[2].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(a[3].get<int64_t>(), std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(a[4].is_number_float());
  EXPECT_EQ(a[4].get<double>(), 1.25);
  EXPECT_TRUE(a[5].is_number_float());  // past 64 bits
  EXPECT_THROW((void)a[0].get<std::string>(), json::type_error);
  EXPECT_THROW((void)a[0].get<bool>(), json::type_error);
}

TEST(JsonReader, ObjectsFindTheirMembersAndKeepTheirOrder) {
  const JsonDocument doc =
      JsonDocument::parse(R"({"z": 1, "a": {"inner": [true, null]}, "z": "last", "e\u0301": 2})");
  const JsonValue& root = doc.root();
  ASSERT_TRUE(root.is_object());
  ASSERT_EQ(root.size(), 4u);
  EXPECT_EQ(root[0].key(), "z");
  EXPECT_EQ(root[1].key(), "a");
  // A repeated name: the last, as nlohmann keeps it.
  ASSERT_NE(root.find("z"), nullptr);
  EXPECT_EQ(root.find("z")->get<std::string>(), "last");
  const JsonValue* inner = root.find("a")->find("inner");
  ASSERT_NE(inner, nullptr);
  ASSERT_EQ(inner->size(), 2u);
  EXPECT_TRUE((*inner)[0].get<bool>());
  EXPECT_TRUE((*inner)[1].is_null());
  EXPECT_EQ(root.find("e\xcc\x81")->get<uint64_t>(), 2u);  // an escaped key, decoded
  EXPECT_EQ(root.find("missing"), nullptr);
  EXPECT_EQ(inner->find("a"), nullptr);  // not an object
  EXPECT_FALSE(root.find("z")->contains("z"));
}

// Strings point into the document's text or into its decoded copies: moving the document, as
// returning it does, must leave every one of them readable. Short strings are the risk (a
// std::string keeps those inside itself, and a moved one copies them).
TEST(JsonReader, AMovedDocumentKeepsItsStrings) {
  std::vector<JsonDocument> docs;
  for (int i = 0; i < 64; ++i) {
    docs.push_back(JsonDocument::parse(R"({"k":"v\n","s":"ab"})"));  // grows and moves them
  }
  JsonDocument short_text = JsonDocument::parse("\"x\"");
  JsonDocument moved = std::move(short_text);
  EXPECT_EQ(moved.root().get<std::string>(), "x");
  for (const JsonDocument& d : docs) {
    EXPECT_EQ(d.root().find("k")->get<std::string>(), "v\n");
    EXPECT_EQ(d.root().find("s")->get<std::string>(), "ab");
  }
}

// Nesting as deep as the parser takes is parsed without recursion; deeper is refused, not a
// stack overflow or a gigabyte of bookkeeping.
TEST(JsonReader, DeepNestingIsBounded) {
  const size_t depth = 10'000;
  const std::string text = std::string(depth, '[') + std::string(depth, ']');
  const JsonDocument doc = JsonDocument::parse(text);
  const JsonValue* v = &doc.root();
  size_t levels = 0;
  while (v->is_array() && !v->empty()) {
    v = &(*v)[0];
    ++levels;
  }
  EXPECT_EQ(levels, depth - 1);
  EXPECT_THROW(JsonDocument::parse("[" + text + "]"), json::parse_error);
  EXPECT_THROW(JsonDocument::parse(std::string(1'000'000, '[')), json::parse_error);
}

TEST(JsonReader, AnErrorSaysWhereTheTextStopsBeingJson) {
  try {
    JsonDocument::parse("{\"a\": [1, 2,, 3]}");
    FAIL() << "parsed";
  } catch (const json::parse_error& e) {
    EXPECT_EQ(e.byte, 13u);
    EXPECT_NE(std::string(e.what()).find("expected a value"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ttmem::collector
