// JSON for the files the library writes and reads back: the contribution ledger, metrics_file
// rows and the CLI's partition plan. One writer, so that every file escapes strings and prints
// numbers the same way, and one strict parser for text an operator may have edited or an
// attacker tampered with.
//
// WRITING. Writer appends one JSON text to a string, members and items in the order they are
// written (so a format fixes its member order by the order of its calls), with no whitespace.
//   - strings: the bytes themselves, except '"' -> \", '\' -> \\, and U+0000..U+001F: \b \f \n
//     \r \t for those five, \u00xx (lowercase hex) for the rest. Nothing else is escaped (not
//     '/', not DEL, not non-ASCII). The bytes are not checked: a caller writing text it did not
//     make checks it with IsValidUtf8 first, or the file is not JSON.
//   - integers: decimal, '-' for negatives.
//   - doubles: printf("%.<digits>g") in the "C" locale (std::to_chars), whatever the process's
//     locale; kRoundTripDigits (17) reads back exactly. NaN and infinities have no JSON form and
//     are written as null.
//
// READING. Parse reads exactly one value that fills the whole text. It is strict (RFC 8259's
// grammar, nothing more: no comments, no trailing commas, no NaN, strings valid UTF-8 without
// lone surrogates) and bounded: text longer than max_bytes and containers nested deeper than
// max_depth are refused, so recursion and memory are bounded by the options whatever the input.
// A refusal names the byte offset and what was found where something else was expected.
//
// Thread safety: the functions are reentrant; a Writer or Value is thread-compatible (one thread
// at a time per object).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fedml/core/status.h"

namespace fedml::core::json {

/// Significant digits that make a double read back exactly (printf's %.17g).
inline constexpr int kRoundTripDigits = 17;

/// Appends `s` as a JSON string, quotes included, escaped as described above.
void AppendString(std::string_view s, std::string* out);
void AppendInt(std::int64_t v, std::string* out);
void AppendUint(std::uint64_t v, std::string* out);
/// printf("%.<significant_digits>g") in the "C" locale, the digits kept to 1..17; null when `v`
/// is not finite.
void AppendDouble(double v, int significant_digits, std::string* out);

/// Builds one JSON text. Members and items appear in the order of the calls; commas and colons
/// are placed by the writer. The caller pairs every Begin with its End and writes a Key before
/// every value inside an object; breaking that is a programming error (asserted in debug builds).
class Writer {
 public:
  Writer& BeginObject() { return Open('{'); }
  Writer& EndObject() { return Close('}'); }
  Writer& BeginArray() { return Open('['); }
  Writer& EndArray() { return Close(']'); }
  /// The next member's name; the value call that follows is its value.
  Writer& Key(std::string_view name);
  Writer& String(std::string_view s);
  Writer& Int(std::int64_t v);
  Writer& Uint(std::uint64_t v);
  Writer& Double(double v, int significant_digits = kRoundTripDigits);
  Writer& Bool(bool v);
  Writer& Null();

  /// The text so far (complete once every container is closed).
  const std::string& text() const { return out_; }
  /// Moves the text out; the writer is left empty, ready for a new text.
  std::string Take();

 private:
  Writer& Open(char bracket);
  Writer& Close(char bracket);
  void BeforeValue();

  std::string out_;
  // One entry per open container: whether something was written in it yet (a comma is due).
  std::vector<bool> open_;
  bool after_key_ = false;
};

/// One parsed value. Numbers keep their text as written, so that a caller decides how to read
/// them (an integer out of range, or a double that does not round-trip, is the caller's error
/// to name) and can insist on a canonical form.
struct Value {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  std::string text;          // a string's decoded bytes; a number's text; "true"/"false"; "null"
  std::vector<Value> items;  // an array's items
  std::vector<std::pair<std::string, Value>> members;  // an object's, in order, repeats kept
};

/// "null", "a boolean", "a number", "a string", "an array", "an object": for messages.
const char* KindName(Value::Kind kind);

struct ParseOptions {
  /// Containers nested deeper than this are refused (a bare scalar has depth 0, "[]" depth 1).
  int max_depth = 32;
  /// Longer text is refused before it is parsed.
  std::size_t max_bytes = std::size_t{64} << 20;
  /// RFC 8259's whitespace (space, tab, CR, LF) between tokens. False for canonical formats
  /// that have none outside strings: whitespace is then refused like any other stray byte.
  bool allow_whitespace = true;
  // Words the messages use, so that a format built on JSON speaks of itself in them:
  //   "<input> ends inside a string", "unexpected text after <top_value>",
  //   "nested deeper than <depth_limit> <max_depth> levels".
  std::string_view input = "the text";
  std::string_view top_value = "the value";
  std::string_view depth_limit = "the allowed";
};

/// Where and why a text was refused.
struct ParseError {
  std::size_t offset = 0;  // 0-based byte offset of the problem
  std::string what;        // what was found, and what was expected there
};

/// Parses `text` as one value. False, with *error filled and *out unspecified, when refused.
bool Parse(std::string_view text, const ParseOptions& options, Value* out, ParseError* error);
/// The same as a Result: INVALID_ARGUMENT "not valid JSON at byte offset N: <what>".
Result<Value> Parse(std::string_view text, const ParseOptions& options = {});

/// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s);

/// `s` quoted for an error message: at most 40 bytes (then "..."), printable ASCII as it is,
/// every other byte (and ' and \) as \xNN, so that no message carries raw bytes from a file.
std::string DescribeBytes(std::string_view s);

}  // namespace fedml::core::json
