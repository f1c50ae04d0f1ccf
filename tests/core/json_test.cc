#include <catch2/catch.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "fedml/core/json.h"

using namespace fedml::core::json;

namespace {

std::string Str(std::string_view s) {
  std::string out;
  AppendString(s, &out);
  return out;
}

std::string Dbl(double v, int digits = kRoundTripDigits) {
  std::string out;
  AppendDouble(v, digits, &out);
  return out;
}

// The refusal of `text` as "<offset>: <what>", or "ok" when it parses.
std::string Refusal(std::string_view text, const ParseOptions& options = {}) {
  Value v;
  ParseError e;
  if (Parse(text, options, &v, &e)) return "ok";
  return std::to_string(e.offset) + ": " + e.what;
}

}  // namespace

TEST_CASE("json strings are escaped per RFC 8259 and nothing more", "[json]") {
  CHECK(Str("") == "\"\"");
  CHECK(Str("plain text/with slash") == "\"plain text/with slash\"");
  CHECK(Str("q\"b\\") == "\"q\\\"b\\\\\"");
  CHECK(Str("\b\f\n\r\t") == "\"\\b\\f\\n\\r\\t\"");
  CHECK(Str(std::string("\0\x01\x1f", 3)) == "\"\\u0000\\u0001\\u001f\"");
  CHECK(Str("\x7f") == "\"\x7f\"");  // DEL is not a control character in JSON
  CHECK(Str("\xc3\xa9\xf0\x9f\x98\x80") == "\"\xc3\xa9\xf0\x9f\x98\x80\"");  // UTF-8 as is
  // Every control character, and the round trip through the parser.
  std::string all;
  for (int c = 0; c < 0x80; ++c) all.push_back(static_cast<char>(c));
  auto back = Parse(Str(all));
  REQUIRE(back.ok());
  CHECK(back->kind == Value::Kind::kString);
  CHECK(back->text == all);
}

TEST_CASE("json numbers are printed as printf's %.Ng in the C locale", "[json]") {
  std::string out;
  AppendInt(0, &out);
  out += ' ';
  AppendInt(-42, &out);
  out += ' ';
  AppendInt(std::numeric_limits<std::int64_t>::min(), &out);
  out += ' ';
  AppendUint(std::numeric_limits<std::uint64_t>::max(), &out);
  CHECK(out == "0 -42 -9223372036854775808 18446744073709551615");

  // 17 digits: what the ledger writes; every double reads back exactly.
  CHECK(Dbl(0.0) == "0");
  CHECK(Dbl(-0.0) == "-0");
  CHECK(Dbl(0.5) == "0.5");
  CHECK(Dbl(0.1) == "0.10000000000000001");
  CHECK(Dbl(1.0 / 3.0) == "0.33333333333333331");
  CHECK(Dbl(100.0) == "100");
  CHECK(Dbl(1e16) == "10000000000000000");
  CHECK(Dbl(1e17) == "1e+17");
  CHECK(Dbl(1.5e-7) == "1.4999999999999999e-07");
  CHECK(Dbl(5e-324) == "4.9406564584124654e-324");
  CHECK(Dbl(std::numeric_limits<double>::max()) == "1.7976931348623157e+308");
  // 10 digits: what metrics_file rows have.
  CHECK(Dbl(1.0 / 3.0, 10) == "0.3333333333");
  CHECK(Dbl(0.1, 10) == "0.1");
  CHECK(Dbl(12345678901.0, 10) == "1.23456789e+10");
  CHECK(Dbl(1e-5, 10) == "1e-05");
  CHECK(Dbl(99999.99999, 10) == "99999.99999");
  // Digits are kept to 1..17; NaN and infinities have no JSON form.
  CHECK(Dbl(0.1, 40) == Dbl(0.1, 17));
  CHECK(Dbl(123.0, 0) == "1e+02");
  CHECK(Dbl(std::nan("")) == "null");
  CHECK(Dbl(std::numeric_limits<double>::infinity()) == "null");
  CHECK(Dbl(-std::numeric_limits<double>::infinity(), 10) == "null");
  for (double d : {0.1, 1.0 / 3.0, 5e-324, 1e308, -123.456e-78}) {
    const std::string text = Dbl(d);
    double back = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), back);
    CHECK(r.ec == std::errc());
    CHECK(back == d);
  }
}

TEST_CASE("json writer places members in call order with commas and colons", "[json]") {
  Writer w;
  w.BeginObject().Key("z").Int(1).Key("a").BeginArray();
  w.Int(1).String("x").Null().Bool(true).Bool(false).Double(0.25).Uint(7);
  w.BeginArray().EndArray().BeginObject().EndObject();
  w.EndArray().Key("q\"uote").BeginObject().Key("k").Double(NAN, 10).EndObject().EndObject();
  CHECK(w.text() ==
        "{\"z\":1,\"a\":[1,\"x\",null,true,false,0.25,7,[],{}],\"q\\\"uote\":{\"k\":null}}");
  const std::string taken = w.Take();
  CHECK(w.text().empty());
  w.BeginArray().Int(1).Int(2).EndArray();
  CHECK(w.Take() == "[1,2]");
  w.String("top");
  CHECK(w.Take() == "\"top\"");
  // What the writer writes, the parser reads, members in order.
  auto back = Parse(taken);
  REQUIRE(back.ok());
  REQUIRE(back->members.size() == 3);
  CHECK(back->members[0].first == "z");
  CHECK(back->members[1].first == "a");
  CHECK(back->members[1].second.items.size() == 9);
  CHECK(back->members[1].second.items[5].text == "0.25");
  CHECK(back->members[2].first == "q\"uote");
}

TEST_CASE("json parser reads values, keeping numbers as written", "[json]") {
  auto v =
      Parse(" { \"a\" : [ 1 , -0.5e+3 , \"\\u00e9\\ud83d\\ude00\\/\" ] ,\"b\":{}, \"a\":null }\n");
  REQUIRE(v.ok());
  REQUIRE(v->kind == Value::Kind::kObject);
  REQUIRE(v->members.size() == 3);  // repeats are kept, for the caller to judge
  const Value& a = v->members[0].second;
  REQUIRE(a.items.size() == 3);
  CHECK(a.items[0].kind == Value::Kind::kNumber);
  CHECK(a.items[1].text == "-0.5e+3");
  CHECK(a.items[2].text == "\xc3\xa9\xf0\x9f\x98\x80/");
  CHECK(v->members[1].second.kind == Value::Kind::kObject);
  CHECK(v->members[2].second.kind == Value::Kind::kNull);
  CHECK(KindName(Value::Kind::kArray) == std::string("an array"));
  for (const char* scalar : {"0", "-0", "1e5", "true", "false", "null", "\"\""}) {
    CAPTURE(scalar);
    CHECK(Parse(scalar).ok());
  }
}

TEST_CASE("json parser refuses malformed text, naming the offset and what was expected", "[json]") {
  // Truncated: every proper prefix of a valid text is refused.
  const std::string good = "{\"a\":[1,2.5e-3,\"x\\u00e9\\n\"],\"b\":{\"c\":true,\"d\":null}}";
  REQUIRE(Refusal(good) == "ok");
  for (std::size_t n = 0; n < good.size(); ++n) {
    CAPTURE(n);
    CHECK(Refusal(good.substr(0, n)) != "ok");
  }
  CHECK(Refusal("") == "0: the text ends where a value belongs");
  CHECK(Refusal("{\"a\":1") == "6: the text ends inside an object");
  CHECK(Refusal("[1,2") == "4: the text ends inside an array");
  CHECK(Refusal("\"abc") == "4: the text ends inside a string");
  CHECK(Refusal("{\"a\"") == "4: the text ends where ':' after a member name");
  CHECK(Refusal("\"\\u12") == "3: the text ends inside a \\u escape");
  CHECK(Refusal("\"\\") == "2: the text ends inside an escape");

  // Trailing bytes.
  CHECK(Refusal("{} {}") == "3: unexpected text after the value");
  CHECK(Refusal("1x") == "1: unexpected text after the value");
  CHECK(Refusal("nullx") == "4: unexpected text after the value");

  // Deep nesting: refused at the first bracket past the limit, without recursing further.
  ParseOptions shallow;
  shallow.max_depth = 2;
  CHECK(Refusal("[[1]]", shallow) == "ok");
  CHECK(Refusal("[[[1]]]", shallow) == "2: nested deeper than the allowed 2 levels");
  CHECK(Refusal("{\"a\":{\"b\":[]}}", shallow) == "10: nested deeper than the allowed 2 levels");
  CHECK(Refusal(std::string(1u << 20, '[')) == "32: nested deeper than the allowed 32 levels");
  CHECK(Refusal(std::string(1u << 20, '{')) == "1: expected a member name in quotes, found '{'");

  // Bad escapes and bad string bytes.
  CHECK(Refusal("\"\\x\"") == "2: an unknown escape '\\x'");
  CHECK(Refusal("\"\\u12g4\"") == "3: a \\u escape needs 4 hex digits");
  CHECK(Refusal("\"\\udc00\"") == "7: a lone low surrogate in a \\u escape");
  CHECK(Refusal("\"\\ud800\"") == "7: a high surrogate without its pair");
  CHECK(Refusal("\"\\ud800\\u0041\"") == "13: a high surrogate without its pair");
  CHECK(Refusal("\"a\x01\"") == "2: a raw control character inside a string (must be escaped)");
  CHECK(Refusal("\"ab\xff\"") == "1: a string that is not valid UTF-8");
  CHECK(Refusal("\"\xc0\x80\"") == "1: a string that is not valid UTF-8");      // overlong
  CHECK(Refusal("\"\xed\xa0\x80\"") == "1: a string that is not valid UTF-8");  // surrogate

  // Numbers and literals outside the grammar.
  CHECK(Refusal("01") == "1: unexpected text after the value");
  CHECK(Refusal("-") == "1: a number needs a digit here");
  CHECK(Refusal("+1") == "0: expected a value, found '+'");
  CHECK(Refusal("1.") == "2: a number needs a digit after '.'");
  CHECK(Refusal("1e+") == "3: a number needs a digit in its exponent");
  CHECK(Refusal("NaN") == "0: expected a value, found 'N'");
  CHECK(Refusal("tru") == "0: expected a value, found 't'");
  CHECK(Refusal("[1,]") == "3: expected a value, found ']'");
  CHECK(Refusal("{\"a\":1,}") == "7: expected a member name in quotes, found '}'");
  CHECK(Refusal("{1:2}") == "1: expected a member name in quotes, found '1'");
  CHECK(Refusal("[1 2]") == "3: expected ',' or ']' in an array, found '2'");
  CHECK(Refusal("{\"a\":1 \"b\"}") == "7: expected ',' or '}' in an object, found '\"'");
  CHECK(Refusal("{\"a\" 1}") == "5: expected ':' after a member name, found '1'");

  // The Result form says the same.
  auto r = Parse("[1,]");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == fedml::StatusCode::kInvalidArgument);
  CHECK(r.status().message() == "not valid JSON at byte offset 3: expected a value, found ']'");
}

TEST_CASE("json parser options: no whitespace, size limit and the format's own words", "[json]") {
  ParseOptions canonical;
  canonical.allow_whitespace = false;
  canonical.max_bytes = 16;
  canonical.input = "the line";
  canonical.top_value = "the record's closing '}'";
  canonical.depth_limit = "the format's";
  canonical.max_depth = 1;
  CHECK(Refusal("{\"a\":1}", canonical) == "ok");
  CHECK(Refusal("{\"a\": 1}", canonical) == "5: expected a value, found ' '");
  CHECK(Refusal(" 1", canonical) == "0: expected a value, found ' '");
  CHECK(Refusal("1\n", canonical) == "1: unexpected text after the record's closing '}'");
  CHECK(Refusal("{\"a\":", canonical) == "5: the line ends where a value belongs");
  CHECK(Refusal("[[]]", canonical) == "1: nested deeper than the format's 1 levels");
  CHECK(Refusal("\"0123456789abcdef\"", canonical) ==
        "16: the line is 18 bytes long; at most 16 allowed");
  CHECK(Refusal("\"a b\"", canonical) == "ok");  // whitespace inside strings is text
}

TEST_CASE("json UTF-8 check and byte descriptions for messages", "[json]") {
  CHECK(IsValidUtf8(""));
  CHECK(IsValidUtf8("plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"));
  CHECK_FALSE(IsValidUtf8("\xff"));
  CHECK_FALSE(IsValidUtf8("\xc3"));              // truncated
  CHECK_FALSE(IsValidUtf8("\xe0\x80\x80"));      // overlong
  CHECK_FALSE(IsValidUtf8("\xed\xb0\x80"));      // surrogate
  CHECK_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  CHECK(DescribeBytes("ab") == "'ab'");
  CHECK(DescribeBytes("a'\\\n\xff") == "'a\\x27\\x5c\\x0a\\xff'");
  CHECK(DescribeBytes(std::string(41, 'x')) == "'" + std::string(40, 'x') + "'...");
}
