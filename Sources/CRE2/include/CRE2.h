// A C ABI over RE2, the regex engine Envoy compiles `safe_regex` with. Swift
// cannot call RE2's C++ API directly, so these functions do it for Swift.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct meshctl_re2 meshctl_re2;

/// Compiles `pattern` with RE2's default options (as Envoy does). Returns NULL on
/// a syntax error and writes RE2's message, NUL-terminated, into `error`.
meshctl_re2 *meshctl_re2_compile(const char *pattern, size_t length, char *error, size_t error_capacity);

/// RE2's program size for the compiled regex: Envoy refuses regexes whose
/// program is larger than its configured maximum (100 by default).
int meshctl_re2_program_size(const meshctl_re2 *regex);

/// 1 if `text` contains a match (RE2::PartialMatch), 0 otherwise.
int meshctl_re2_partial_match(const meshctl_re2 *regex, const char *text, size_t length);

void meshctl_re2_free(meshctl_re2 *regex);

#ifdef __cplusplus
}
#endif
