// RE2 behind the C ABI declared in include/CRE2.h.
#include "CRE2.h"

#include <re2/re2.h>
#include <cstring>
#include <string>

struct meshctl_re2 {
  explicit meshctl_re2(re2::StringPiece pattern) : regex(pattern, RE2::Quiet) {}
  RE2 regex;
};

extern "C" meshctl_re2 *meshctl_re2_compile(const char *pattern, size_t length, char *error, size_t error_capacity) {
  auto *compiled = new meshctl_re2(re2::StringPiece(pattern, length));
  if (compiled->regex.ok()) {
    return compiled;
  }
  if (error != nullptr && error_capacity > 0) {
    const std::string &message = compiled->regex.error();
    size_t n = message.size() < error_capacity - 1 ? message.size() : error_capacity - 1;
    std::memcpy(error, message.data(), n);
    error[n] = '\0';
  }
  delete compiled;
  return nullptr;
}

extern "C" int meshctl_re2_program_size(const meshctl_re2 *regex) { return regex->regex.ProgramSize(); }

extern "C" int meshctl_re2_partial_match(const meshctl_re2 *regex, const char *text, size_t length) {
  return RE2::PartialMatch(re2::StringPiece(text, length), regex->regex) ? 1 : 0;
}

extern "C" void meshctl_re2_free(meshctl_re2 *regex) { delete regex; }
