// Small text helpers shared by the parsers of configs, traces and credentials files.
#pragma once

#include <string>
#include <vector>

namespace fedml::core {

/// `s` without leading and trailing whitespace.
std::string Trim(const std::string& s);
/// The fields of `s` between `sep`s, each trimmed; "a,,b," gives {"a", "", "b", ""} and "" gives
/// {}.
std::vector<std::string> SplitTrimmed(const std::string& s, char sep);
/// `items` with `sep` between them ("a, b, c"): how an error lists what is allowed.
std::string Join(const std::vector<std::string>& items, const char* sep);
/// Parses all of `text` (surrounding whitespace and a leading '+' allowed) as a finite double,
/// independent of the C locale. False, leaving *out as it was, for anything else.
bool ParseFiniteDouble(const std::string& text, double* out);

}  // namespace fedml::core
