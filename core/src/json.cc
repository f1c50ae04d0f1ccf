#include "fedml/core/json.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <iterator>
#include <utility>

#include "fedml/core/bytes.h"

namespace fedml::core::json {
namespace {

// The bytes with an escape letter of their own, {byte, letter}: the writer writes them as '\'
// and the letter, and the reader reads them back (and "\/" as '/', which is never written).
constexpr std::pair<char, char> kShortEscapes[] = {
    {'"', '"'}, {'\\', '\\'}, {'\b', 'b'}, {'\f', 'f'}, {'\n', 'n'}, {'\r', 'r'}, {'\t', 't'}};

void AppendUtf8(std::uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// A recursive-descent parser whose recursion is bounded by options.max_depth. It stops at the
// first problem and records it in error_.
class Parser {
 public:
  Parser(std::string_view s, const ParseOptions& options) : s_(s), options_(options) {}

  bool ParseDocument(Value* out) {
    if (s_.size() > options_.max_bytes) {
      pos_ = options_.max_bytes;
      return Fail(std::string(options_.input) + " is " + std::to_string(s_.size()) +
                  " bytes long; at most " + std::to_string(options_.max_bytes) + " allowed");
    }
    SkipWhitespace();
    if (!ParseValue(out, 0)) return false;
    SkipWhitespace();
    if (pos_ != s_.size()) {
      return Fail("unexpected text after " + std::string(options_.top_value));
    }
    return true;
  }

  ParseError TakeError() { return std::move(error_); }

 private:
  bool Fail(std::string what) {
    error_.offset = pos_;
    error_.what = std::move(what);
    return false;
  }
  // "<input> ends <where>".
  bool FailAtEnd(const std::string& where) {
    return Fail(std::string(options_.input) + " ends " + where);
  }
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return s_[pos_]; }
  std::string Found() const { return "found " + DescribeBytes(s_.substr(pos_, 1)); }

  void SkipWhitespace() {
    if (!options_.allow_whitespace) return;
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r')) {
      ++pos_;
    }
  }

  bool Expect(char c, const char* context) {
    if (AtEnd()) return FailAtEnd(std::string("where '") + c + "' " + context);
    if (Peek() != c) return Fail(std::string("expected '") + c + "' " + context + ", " + Found());
    ++pos_;
    return true;
  }

  bool ParseValue(Value* out, int depth) {
    if (AtEnd()) return FailAtEnd("where a value belongs");
    const char c = Peek();
    if (c == '{' || c == '[') {
      if (depth >= options_.max_depth) {
        return Fail("nested deeper than " + std::string(options_.depth_limit) + " " +
                    std::to_string(options_.max_depth) + " levels");
      }
      return c == '{' ? ParseObject(out, depth + 1) : ParseArray(out, depth + 1);
    }
    if (c == '"') {
      out->kind = Value::Kind::kString;
      return ParseString(&out->text);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
    for (const char* literal : {"true", "false", "null"}) {
      const std::string_view lit(literal);
      if (s_.substr(pos_, lit.size()) == lit) {
        pos_ += lit.size();
        out->kind = lit == "null" ? Value::Kind::kNull : Value::Kind::kBool;
        out->text = literal;
        return true;
      }
    }
    return Fail("expected a value, " + Found());
  }

  // Steps over a container's opening bracket; true when `close` follows at once (it is empty).
  bool OpenIsEmpty(char close) {
    ++pos_;
    SkipWhitespace();
    if (AtEnd() || Peek() != close) return false;
    ++pos_;
    return true;
  }

  // After an item of a container (`what`: "an object", "an array"): steps over ',' (*more: an
  // item follows) or `close` (the container ends); false, refused, on anything else.
  bool NextOrClose(char close, const char* what, bool* more) {
    SkipWhitespace();
    if (AtEnd()) return FailAtEnd(std::string("inside ") + what);
    *more = Peek() == ',';
    if (!*more && Peek() != close) {
      return Fail(std::string("expected ',' or '") + close + "' in " + what + ", " + Found());
    }
    ++pos_;
    if (*more) SkipWhitespace();
    return true;
  }

  bool ParseObject(Value* out, int depth) {
    out->kind = Value::Kind::kObject;
    if (OpenIsEmpty('}')) return true;
    for (bool more = true; more;) {
      if (AtEnd()) return FailAtEnd("inside an object");
      if (Peek() != '"') return Fail("expected a member name in quotes, " + Found());
      std::string name;
      if (!ParseString(&name)) return false;
      SkipWhitespace();
      if (!Expect(':', "after a member name")) return false;
      SkipWhitespace();
      Value value;
      if (!ParseValue(&value, depth)) return false;
      out->members.emplace_back(std::move(name), std::move(value));
      if (!NextOrClose('}', "an object", &more)) return false;
    }
    return true;
  }

  bool ParseArray(Value* out, int depth) {
    out->kind = Value::Kind::kArray;
    if (OpenIsEmpty(']')) return true;
    for (bool more = true; more;) {
      Value value;
      if (!ParseValue(&value, depth)) return false;
      out->items.push_back(std::move(value));
      if (!NextOrClose(']', "an array", &more)) return false;
    }
    return true;
  }

  bool ParseHex4(std::uint32_t* out) {
    if (s_.size() - pos_ < 4) return FailAtEnd("inside a \\u escape");
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_ + i];
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      if (d < 0) return Fail("a \\u escape needs 4 hex digits");
      v = v * 16 + static_cast<std::uint32_t>(d);
    }
    pos_ += 4;
    *out = v;
    return true;
  }

  bool ParseString(std::string* out) {
    ++pos_;  // '"'
    std::string decoded;
    for (;;) {
      if (AtEnd()) return FailAtEnd("inside a string");
      const auto c = static_cast<unsigned char>(Peek());
      if (c == '"') break;
      if (c < 0x20) return Fail("a raw control character inside a string (must be escaped)");
      if (c != '\\') {
        // Copy the run of plain bytes up to the next quote, backslash or control character.
        const std::size_t start = pos_;
        while (!AtEnd()) {
          const auto d = static_cast<unsigned char>(Peek());
          if (d == '"' || d == '\\' || d < 0x20) break;
          ++pos_;
        }
        const std::string_view run = s_.substr(start, pos_ - start);
        if (!IsValidUtf8(run)) {
          pos_ = start;
          return Fail("a string that is not valid UTF-8");
        }
        decoded.append(run);
        continue;
      }
      ++pos_;  // '\'
      if (AtEnd()) return FailAtEnd("inside an escape");
      const char e = Peek();
      ++pos_;
      if (e == 'u') {
        std::uint32_t cp = 0;
        if (!ParseHex4(&cp)) return false;
        if (cp >= 0xdc00 && cp <= 0xdfff) return Fail("a lone low surrogate in a \\u escape");
        if (cp >= 0xd800 && cp <= 0xdbff) {
          std::uint32_t low = 0;
          if (s_.substr(pos_, 2) != "\\u") return Fail("a high surrogate without its pair");
          pos_ += 2;
          if (!ParseHex4(&low)) return false;
          if (low < 0xdc00 || low > 0xdfff) return Fail("a high surrogate without its pair");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        }
        AppendUtf8(cp, &decoded);
        continue;
      }
      if (e == '/') {
        decoded.push_back('/');
        continue;
      }
      const auto* short_escape = std::find_if(std::begin(kShortEscapes), std::end(kShortEscapes),
                                              [&](const auto& p) { return p.second == e; });
      if (short_escape == std::end(kShortEscapes)) {
        --pos_;
        return Fail("an unknown escape '\\" + std::string(1, e) + "'");
      }
      decoded.push_back(short_escape->first);
    }
    ++pos_;  // closing '"'
    *out = std::move(decoded);
    return true;
  }

  bool ParseNumber(Value* out) {
    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    const std::size_t start = pos_;
    auto digit = [&] { return !AtEnd() && Peek() >= '0' && Peek() <= '9'; };
    if (Peek() == '-') ++pos_;
    if (!digit()) return Fail("a number needs a digit here");
    if (Peek() == '0') {
      ++pos_;
    } else {
      while (digit()) ++pos_;
    }
    if (!AtEnd() && Peek() == '.') {
      ++pos_;
      if (!digit()) return Fail("a number needs a digit after '.'");
      while (digit()) ++pos_;
    }
    if (!AtEnd() && (Peek() == 'e' || Peek() == 'E')) {
      ++pos_;
      if (!AtEnd() && (Peek() == '+' || Peek() == '-')) ++pos_;
      if (!digit()) return Fail("a number needs a digit in its exponent");
      while (digit()) ++pos_;
    }
    out->kind = Value::Kind::kNumber;
    out->text = std::string(s_.substr(start, pos_ - start));
    return true;
  }

  std::string_view s_;
  const ParseOptions& options_;
  std::size_t pos_ = 0;
  ParseError error_;
};

}  // namespace

// ---- writing -----------------------------------------------------------------------------------

void AppendString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && ch != '"' && ch != '\\') {
      out->push_back(ch);
      continue;
    }
    out->push_back('\\');
    const auto* short_escape = std::find_if(std::begin(kShortEscapes), std::end(kShortEscapes),
                                            [&](const auto& p) { return p.first == ch; });
    if (short_escape != std::end(kShortEscapes)) {
      out->push_back(short_escape->second);
    } else {
      *out += "u00";
      AppendHex(&c, 1, out);
    }
  }
  out->push_back('"');
}

void AppendInt(std::int64_t v, std::string* out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

void AppendUint(std::uint64_t v, std::string* out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

void AppendDouble(double v, int significant_digits, std::string* out) {
  if (!std::isfinite(v)) {
    *out += "null";
    return;
  }
  // to_chars(general, p) is printf("%.<p>g") in the "C" locale. p is kept to 1..17: a double
  // has no more significant digits, and then the longest text ("-1.2345678901234567e-308")
  // fits the buffer.
  char buf[32];
  const int digits = significant_digits < 1                  ? 1
                     : significant_digits > kRoundTripDigits ? kRoundTripDigits
                                                             : significant_digits;
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, digits);
  out->append(buf, r.ptr);
}

Writer& Writer::Open(char bracket) {
  BeforeValue();
  out_.push_back(bracket);
  open_.push_back(false);
  return *this;
}

Writer& Writer::Close(char bracket) {
  assert(!open_.empty() && !after_key_);
  open_.pop_back();
  out_.push_back(bracket);
  return *this;
}

Writer& Writer::Key(std::string_view name) {
  assert(!open_.empty() && !after_key_);
  if (open_.back()) out_.push_back(',');
  open_.back() = true;
  AppendString(name, &out_);
  out_.push_back(':');
  after_key_ = true;
  return *this;
}

void Writer::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (open_.empty()) return;
  if (open_.back()) out_.push_back(',');
  open_.back() = true;
}

Writer& Writer::String(std::string_view s) {
  BeforeValue();
  AppendString(s, &out_);
  return *this;
}

Writer& Writer::Int(std::int64_t v) {
  BeforeValue();
  AppendInt(v, &out_);
  return *this;
}

Writer& Writer::Uint(std::uint64_t v) {
  BeforeValue();
  AppendUint(v, &out_);
  return *this;
}

Writer& Writer::Double(double v, int significant_digits) {
  BeforeValue();
  AppendDouble(v, significant_digits, &out_);
  return *this;
}

Writer& Writer::Bool(bool v) {
  BeforeValue();
  out_ += v ? "true" : "false";
  return *this;
}

Writer& Writer::Null() {
  BeforeValue();
  out_ += "null";
  return *this;
}

std::string Writer::Take() {
  std::string text = std::move(out_);
  out_.clear();
  open_.clear();
  after_key_ = false;
  return text;
}

// ---- reading -----------------------------------------------------------------------------------

const char* KindName(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::kNull:
      return "null";
    case Value::Kind::kBool:
      return "a boolean";
    case Value::Kind::kNumber:
      return "a number";
    case Value::Kind::kString:
      return "a string";
    case Value::Kind::kArray:
      return "an array";
    case Value::Kind::kObject:
      return "an object";
  }
  return "?";
}

bool Parse(std::string_view text, const ParseOptions& options, Value* out, ParseError* error) {
  Parser parser(text, options);
  if (parser.ParseDocument(out)) return true;
  *error = parser.TakeError();
  return false;
}

Result<Value> Parse(std::string_view text, const ParseOptions& options) {
  Value value;
  ParseError error;
  if (!Parse(text, options, &value, &error)) {
    return Status::InvalidArgument("not valid JSON at byte offset " + std::to_string(error.offset) +
                                   ": " + error.what);
  }
  return value;
}

bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n = 0;
    std::uint32_t cp = 0;
    std::uint32_t min = 0;
    if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (s.size() - i <= static_cast<std::size_t>(n)) return false;
    for (int k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

std::string DescribeBytes(std::string_view s) {
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < 40; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      AppendHex(&c, 1, &out);
    }
  }
  out += s.size() > 40 ? "'..." : "'";
  return out;
}

}  // namespace fedml::core::json
