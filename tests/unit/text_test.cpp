// printable_text: what the readers do to text they did not write before anyone prints it.
#include "common/text.h"

#include <gtest/gtest.h>

namespace ttmem::common {
namespace {

TEST(PrintableText, WellFormedUtf8PassesUnchanged) {
  const std::string text = "ttnn \xc2\xb5s \xe2\x9c\x93 \xf0\x9d\x84\x9e";  // µs, check, G clef
  EXPECT_EQ(printable_text(text, ' '), text);
}

TEST(PrintableText, ControlCharactersBecomeTheReplacement) {
  EXPECT_EQ(printable_text("a\tb\nc\x1f", ' '), "a b c ");
  EXPECT_EQ(printable_text("a\tb", '?'), "a?b");
}

TEST(PrintableText, EveryByteOfAMalformedSequenceBecomesAQuestionMark) {
  EXPECT_EQ(printable_text("\xff\xfe", ' '), "??");            // never valid
  EXPECT_EQ(printable_text("\xc0\xaf", ' '), "??");            // overlong '/'
  EXPECT_EQ(printable_text("\xed\xa0\x80", ' '), "???");       // UTF-16 surrogate
  EXPECT_EQ(printable_text("\xf4\x90\x80\x80", ' '), "????");  // beyond U+10FFFF
  EXPECT_EQ(printable_text("ok\xe2\x82", ' '), "ok??");        // cut short at the end
  EXPECT_EQ(printable_text("\xe2(\xa1", ' '), "?(?");          // continuation missing
}

TEST(PrintableText, KeepsTheLengthSoItCanReplaceInPlace) {
  const std::string raw = "\xe2\x82\xac\xff\x01\xf0\x9f\x98";
  EXPECT_EQ(printable_text(raw, ' ').size(), raw.size());
}

}  // namespace
}  // namespace ttmem::common
