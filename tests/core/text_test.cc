#include <catch2/catch.hpp>

#include "fedml/core/text.h"

using namespace fedml::core;

TEST_CASE("text helpers trim, split and parse numbers strictly", "[text]") {
  CHECK(Trim("  a b\t\r\n") == "a b");
  CHECK(Trim(" \t ").empty());
  CHECK(SplitTrimmed("a, b ,,c,", ',') == std::vector<std::string>{"a", "b", "", "c", ""});
  CHECK(SplitTrimmed("", ',').empty());
  CHECK(SplitTrimmed("x", ';') == std::vector<std::string>{"x"});
  double v = -1.0;
  CHECK(ParseFiniteDouble(" +2.5e3 ", &v));
  CHECK(v == 2500.0);
  for (const char* bad : {"", "  ", "1.5x", "nan", "inf", "1e400", "--1", "1,5"}) {
    CAPTURE(bad);
    double w = 7.0;
    CHECK_FALSE(ParseFiniteDouble(bad, &w));
    CHECK(w == 7.0);  // untouched
  }
}
