#include "common/text.h"

namespace ttmem::common {

namespace {

bool continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

// Length of the well-formed UTF-8 sequence at raw[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 if there is none.
size_t sequence_length(std::string_view raw, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(raw[i + k]); };
  unsigned char lead = byte(0);
  size_t len = lead < 0x80                    ? 1
               : lead >= 0xC2 && lead <= 0xDF ? 2
               : lead >= 0xE0 && lead <= 0xEF ? 3
               : lead >= 0xF0 && lead <= 0xF4 ? 4
                                              : 0;
  if (len == 0 || i + len > raw.size()) return 0;
  // The second byte's range narrows for the leads that could otherwise encode an overlong
  // form, a surrogate or a code point beyond U+10FFFF.
  unsigned char lo = 0x80, hi = 0xBF;
  if (lead == 0xE0) lo = 0xA0;
  if (lead == 0xED) hi = 0x9F;
  if (lead == 0xF0) lo = 0x90;
  if (lead == 0xF4) hi = 0x8F;
  if (len > 1 && (byte(1) < lo || byte(1) > hi)) return 0;
  for (size_t k = 2; k < len; ++k) {
    if (!continuation(byte(k))) return 0;
  }
  return len;
}

}  // namespace

std::string printable_text(std::string_view raw, char control) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size();) {
    size_t len = sequence_length(raw, i);
    if (len == 0) {
      out += '?';
      i += 1;
    } else if (len == 1 && static_cast<unsigned char>(raw[i]) < 0x20) {
      out += control;
      i += 1;
    } else {
      out.append(raw.substr(i, len));
      i += len;
    }
  }
  return out;
}

}  // namespace ttmem::common
