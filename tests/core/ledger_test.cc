// The contribution ledger: writing, reading back, and finding every kind of damage at the right
// record. The hash is recomputed here with OpenSSL directly, from the definition in ledger.h, so
// that an outside verifier following the header agrees with VerifyLedger.
#include "fedml/core/security/ledger.h"

#include <openssl/evp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fedml/core/bytes.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using fedml::StatusCode;
using namespace fedml::core::security;

namespace {

class ScratchDir : public fedml::testing::TempDir {
 public:
  ScratchDir() : TempDir("ledger", fs::path(FEDML_BINARY_DIR) / "tests") {}
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// SHA-256 with OpenSSL directly (independent of the ledger's Sha256Hex), in lowercase hex
// (core::HexEncode, pinned by bytes_test).
std::string OpensslSha256Hex(const std::string& data) {
  unsigned char digest[32];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) == 1);
  return fedml::core::HexEncode(digest, len);
}

// The header's definition: SHA-256 of the line less its last 75 bytes, plus "}".
std::string HashOfLine(const std::string& line) {
  REQUIRE(line.size() > 75);
  return OpensslSha256Hex(line.substr(0, line.size() - 75) + "}");
}

// What an attacker who knows the format does after changing a line: recompute its hash.
std::string Rehash(std::string line) {
  const std::string hash = HashOfLine(line);
  line.replace(line.size() - 66, 64, hash);
  return line;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t nl = text.find('\n', start);
    REQUIRE(nl != std::string::npos);
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return text;
}

std::string UpdateHash(int i) {
  const std::string bytes = "update bytes of client " + std::to_string(i);
  auto hex = Sha256Hex(bytes.data(), bytes.size());
  REQUIRE(hex.ok());
  return *hex;
}

// A record with awkward values: doubles that need all 17 digits, -0, a subnormal, the largest
// double, negative ids, and a note with quotes, escapes, control characters and non-ASCII text.
LedgerRecord MakeRecord(int i) {
  LedgerRecord r;
  r.round = 10 + i;
  r.time = "2024-05-0" + std::to_string(1 + i) + "T12:3" + std::to_string(i) + ":56.789Z";
  r.participants = {0, 1, 2, 7, 1000000000000LL + i};
  r.updates = {{0, UpdateHash(i), 100 + i}, {1, UpdateHash(i + 100), 0}, {7, UpdateHash(-i), 42}};
  r.checks = {{0, 3, "pass", 0.1, 1.0 / 3.0},
              {1, 0, "fail", 12345678.900000001, 1e-5},
              {7, -2, "mismatch", -0.0, 5e-324},
              {2, 2147483647, "pass", std::numeric_limits<double>::max(), -1.5e300}};
  r.excluded = {1, -3};
  r.rewards = {{0, 2.5 * i + 0.1}, {7, -0.3}};
  r.stakes = {{0, 1000.0 / 7.0}, {1, 0}, {7, 1e22}};
  r.note = "round " + std::to_string(i) +
           ": \"quoted\", back\\slash, a/b, tab\t, newline\n, \x01\x1f\x7f, "
           "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  return r;
}

void CheckSameRecord(const LedgerRecord& got, const LedgerRecord& want) {
  CHECK(got.seq == want.seq);
  CHECK(got.prev == want.prev);
  CHECK(got.round == want.round);
  CHECK(got.time == want.time);
  CHECK(got.participants == want.participants);
  REQUIRE(got.updates.size() == want.updates.size());
  for (std::size_t i = 0; i < got.updates.size(); ++i) {
    CHECK(got.updates[i].client == want.updates[i].client);
    CHECK(got.updates[i].sha256 == want.updates[i].sha256);
    CHECK(got.updates[i].samples == want.updates[i].samples);
  }
  REQUIRE(got.checks.size() == want.checks.size());
  for (std::size_t i = 0; i < got.checks.size(); ++i) {
    CHECK(got.checks[i].client == want.checks[i].client);
    CHECK(got.checks[i].segment == want.checks[i].segment);
    CHECK(got.checks[i].result == want.checks[i].result);
    // Bit for bit: exact, and -0 stays -0.
    CHECK(std::memcmp(&got.checks[i].distance, &want.checks[i].distance, sizeof(double)) == 0);
    CHECK(std::memcmp(&got.checks[i].threshold, &want.checks[i].threshold, sizeof(double)) == 0);
  }
  REQUIRE(got.rewards.size() == want.rewards.size());
  for (std::size_t i = 0; i < got.rewards.size(); ++i) {
    CHECK(got.rewards[i].client == want.rewards[i].client);
    CHECK(std::memcmp(&got.rewards[i].amount, &want.rewards[i].amount, sizeof(double)) == 0);
  }
  REQUIRE(got.stakes.size() == want.stakes.size());
  for (std::size_t i = 0; i < got.stakes.size(); ++i) {
    CHECK(got.stakes[i].client == want.stakes[i].client);
    CHECK(std::memcmp(&got.stakes[i].stake, &want.stakes[i].stake, sizeof(double)) == 0);
  }
  CHECK(got.excluded == want.excluded);
  CHECK(got.note == want.note);
  CHECK(got.hash == want.hash);
  CHECK(got == want);
}

// Writes `n` MakeRecord records to `path`; returns them as they should read back.
std::vector<LedgerRecord> WriteLedger(const std::string& path, int n) {
  auto writer = LedgerWriter::Open(path);
  REQUIRE(writer.ok());
  std::vector<LedgerRecord> want;
  for (int i = 0; i < n; ++i) {
    LedgerRecord r = MakeRecord(i);
    r.prev = writer->last_hash();
    r.seq = writer->next_seq();
    REQUIRE(writer->Append(r).ok());
    r.hash = writer->last_hash();
    want.push_back(r);
  }
  return want;
}

LedgerVerification MustVerifyContents(const std::string& text) {
  auto v = VerifyLedgerContents(text);
  REQUIRE(v.ok());
  return *v;
}

LedgerVerification MustVerify(const std::string& path) {
  auto v = VerifyLedger(path);
  REQUIRE(v.ok());
  return *v;
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::string Prefix(std::int64_t record) {
  return "record " + std::to_string(record) + " (line " + std::to_string(record + 1) + "): ";
}

}  // namespace

TEST_CASE("Sha256Hex gives the standard digests", "[ledger]") {
  auto empty = Sha256Hex(nullptr, 0);
  REQUIRE(empty.ok());
  CHECK(*empty == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  auto abc = Sha256Hex("abc", 3);
  REQUIRE(abc.ok());
  CHECK(*abc == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("LedgerWriter writes records that verify and read back exactly", "[ledger]") {
  ScratchDir dir;
  const std::string path = dir.File("ledger.jsonl");
  const auto want = WriteLedger(path, 5);

  const auto v = MustVerify(path);
  CHECK(v.ok);
  CHECK(v.records == 5);
  CHECK(v.first_bad_record == -1);
  CHECK(v.first_bad_line == 0);
  CHECK_FALSE(v.truncated);
  CHECK(v.problem.empty());

  auto records = ReadLedger(path);
  REQUIRE(records.ok());
  REQUIRE(records->size() == 5);
  for (std::size_t i = 0; i < 5; ++i) {
    INFO("record " << i);
    CheckSameRecord((*records)[i], want[i]);
    CHECK((*records)[i].seq == static_cast<std::int64_t>(i));
    CHECK((*records)[i].prev == (i == 0 ? std::string(kLedgerGenesisPrev) : want[i - 1].hash));
  }

  // The file is exactly the canonical lines, and each hash is the header's definition.
  const auto lines = SplitLines(ReadAll(path));
  REQUIRE(lines.size() == 5);
  for (std::size_t i = 0; i < 5; ++i) {
    CHECK(lines[i] == LedgerRecordToJson(want[i]));
    CHECK(HashOfLine(lines[i]) == want[i].hash);
    CHECK(StartsWith(lines[i], "{\"seq\":" + std::to_string(i) + ",\"prev\":\""));
  }
  CHECK(lines[0].find("\"note\":\"round 0: \\\"quoted\\\", back\\\\slash, a/b, tab\\t, "
                      "newline\\n, \\u0001\\u001f\x7f, caf\xc3\xa9") != std::string::npos);
  CHECK(lines[0].find("\"distance\":0.10000000000000001,\"threshold\":0.33333333333333331") !=
        std::string::npos);
  CHECK(lines[0].find("\"distance\":-0,\"threshold\":4.9406564584124654e-324") !=
        std::string::npos);
}

TEST_CASE("Append fills seq, prev, hash and an empty time, whatever the caller put there",
          "[ledger]") {
  ScratchDir dir;
  const std::string path = dir.File("ledger.jsonl");
  auto writer = LedgerWriter::Open(path);
  REQUIRE(writer.ok());
  CHECK(writer->next_seq() == 0);
  CHECK(writer->last_hash() == kLedgerGenesisPrev);

  LedgerRecord r = MakeRecord(0);
  r.seq = 99;
  r.prev = std::string(64, 'f');
  r.hash = "nonsense";
  r.time.clear();
  const auto before = std::chrono::system_clock::now();
  REQUIRE(writer->Append(r).ok());
  CHECK(writer->next_seq() == 1);

  auto records = ReadLedger(path);
  REQUIRE(records.ok());
  REQUIRE(records->size() == 1);
  const LedgerRecord& got = (*records)[0];
  CHECK(got.seq == 0);
  CHECK(got.prev == kLedgerGenesisPrev);
  CHECK(got.hash == writer->last_hash());
  // "YYYY-MM-DDTHH:MM:SS.mmmZ", UTC, today.
  REQUIRE(got.time.size() == 24);
  CHECK(got.time[4] == '-');
  CHECK(got.time[10] == 'T');
  CHECK(got.time[19] == '.');
  CHECK(got.time.back() == 'Z');
  const std::time_t now = std::chrono::system_clock::to_time_t(before);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char year[8];
  std::snprintf(year, sizeof year, "%04d", tm.tm_year + 1900);
  CHECK(got.time.substr(0, 4) == year);
}

TEST_CASE("ledger doubles are written as printf %.17g and read back exactly", "[ledger]") {
  ScratchDir dir;
  const std::string path = dir.File("ledger.jsonl");
  const std::vector<double> values = {0.0,
                                      -0.0,
                                      0.1,
                                      1.0 / 3.0,
                                      -2.5,
                                      1e22,
                                      1e-7,
                                      123456789012345678.0,
                                      5e-324,
                                      2.2250738585072014e-308,
                                      std::numeric_limits<double>::max(),
                                      -std::numeric_limits<double>::max(),
                                      3.0000000000000004};
  {
    auto writer = LedgerWriter::Open(path);
    REQUIRE(writer.ok());
    LedgerRecord r;
    r.time = "2024-01-01T00:00:00Z";
    for (std::size_t i = 0; i < values.size(); ++i) {
      r.rewards.push_back({static_cast<std::int64_t>(i), values[i]});
    }
    REQUIRE(writer->Append(r).ok());
  }
  const std::string text = ReadAll(path);
  std::setlocale(LC_NUMERIC, "C");
  for (double d : values) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", d);
    INFO(buf);
    CHECK(text.find(std::string("\"amount\":") + buf + "}") != std::string::npos);
  }
  auto records = ReadLedger(path);
  REQUIRE(records.ok());
  REQUIRE(records->size() == 1);
  REQUIRE((*records)[0].rewards.size() == values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double got = (*records)[0].rewards[i].amount;
    CHECK(std::memcmp(&got, &values[i], sizeof(double)) == 0);
  }
}

TEST_CASE("every changed byte is found at the record holding it", "[ledger]") {
  // Every byte of the file (its '\n's included) belongs to one record's line. Changing it to
  // another printable character makes that record fail -- whether the change breaks the JSON, a
  // field name, a value's form, seq, prev, the content (hash mismatch) or the record's own hash
  // field (hash mismatch at that record, not the next). There is no "next record fails" case for
  // a single byte: the next record's prev is checked against the stored hash, and a change to
  // the stored hash already fails its own record. A changed '\n' joins two lines (garbage after
  // the first record's '}'), except the file's last '\n': then the last line is unterminated and
  // reported as truncated.
  ScratchDir dir;
  const std::string path = dir.File("ledger.jsonl");
  WriteLedger(path, 5);
  const std::string text = ReadAll(path);
  const auto lines = SplitLines(text);
  std::vector<std::size_t> line_end;  // offset of each line's '\n'
  for (std::size_t off = 0, i = 0; i < lines.size(); ++i) {
    off += lines[i].size();
    line_end.push_back(off);
    off += 1;
  }
  const std::string replacements = "0f9x\"\\,}: ";
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> failures;
  std::size_t tried = 0;
  std::size_t record = 0;
  for (std::size_t pos = 0; pos < text.size(); ++pos) {
    if (pos > line_end[record]) ++record;
    // Records 0 and 1 get all ten replacements at every byte; the others three, rotating
    // through the ten (the full sweep of all five takes seconds).
    const std::size_t count = record < 2 ? replacements.size() : 3;
    for (std::size_t j = 0; j < count; ++j) {
      const char c = record < 2 ? replacements[j] : replacements[(pos + 3 * j) % 10];
      if (c == text[pos]) continue;
      std::string changed = text;
      changed[pos] = c;
      ++tried;
      const auto v = MustVerifyContents(changed);
      const bool last_newline = pos + 1 == text.size();
      const bool good = !v.ok && v.first_bad_record == static_cast<std::int64_t>(record) &&
                        v.first_bad_line == static_cast<int>(record + 1) &&
                        v.records == static_cast<std::int64_t>(record) &&
                        v.truncated == last_newline &&
                        StartsWith(v.problem, Prefix(static_cast<std::int64_t>(record)));
      if (!good && failures.size() < 10) {
        failures.push_back("byte " + std::to_string(pos) + " ('" + std::string(1, text[pos]) +
                           "' -> '" + c + "') of record " + std::to_string(record) +
                           ": ok=" + std::to_string(v.ok) + " at " +
                           std::to_string(v.first_bad_record) + ": " + v.problem);
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(tried << " changes of " << text.size() << " bytes in " << seconds << " s");
  for (const auto& f : failures) UNSCOPED_INFO(f);
  CHECK(failures.empty());
  CHECK(tried >= 9 * (line_end[1] + 1) + 2 * (text.size() - line_end[1] - 1));

  // A few messages, exactly. Record 2's hash field, one hex digit changed:
  {
    std::string changed = text;
    const std::size_t at = line_end[2] - 3;  // inside the 64 hex digits of record 2's hash
    changed[at] = changed[at] == '0' ? '1' : '0';
    const auto v = MustVerifyContents(changed);
    CHECK(v.problem == Prefix(2) + "its hash does not match its content: the record was changed");
  }
  // Record 1's prev, one hex digit changed:
  {
    std::string changed = text;
    const std::size_t at = line_end[0] + 1 + lines[1].find("\"prev\":\"") + 8;
    changed[at] = changed[at] == '0' ? '1' : '0';
    const auto v = MustVerifyContents(changed);
    CHECK(v.problem == Prefix(1) +
                           "its prev does not match the hash of record 0: a record before it was "
                           "changed, removed or reordered");
  }
  // Record 3's round, one digit changed:
  {
    std::string changed = text;
    const std::size_t at = line_end[2] + 1 + lines[3].find("\"round\":1") + 9;
    changed[at] = '7';
    const auto v = MustVerifyContents(changed);
    CHECK(v.problem == Prefix(3) + "its hash does not match its content: the record was changed");
  }
  // Record 4's seq:
  {
    std::string changed = text;
    changed[line_end[3] + 1 + 7] = '9';
    const auto v = MustVerifyContents(changed);
    CHECK(v.problem == Prefix(4) +
                           "seq is 9, expected 4 (records missing, repeated or out of "
                           "order)");
  }
  // A field name:
  {
    std::string changed = text;
    changed[line_end[0] + 1 + lines[1].find("\"note\"") + 1] = 'm';
    const auto v = MustVerifyContents(changed);
    CHECK(v.problem == Prefix(1) + "unexpected field 'mote'");
  }
  // The first '\n': two lines joined.
  {
    std::string changed = text;
    changed[line_end[0]] = 'x';
    const auto v = MustVerifyContents(changed);
    CHECK(v.problem == Prefix(0) + "not valid JSON at column " +
                           std::to_string(lines[0].size() + 1) +
                           ": unexpected text after the record's closing '}'");
  }

  // The same through the file, for a sample of positions.
  const std::string changed_path = dir.File("changed.jsonl");
  record = 0;
  for (std::size_t pos = 0; pos < text.size(); pos += 97) {
    while (pos > line_end[record]) ++record;
    std::string changed = text;
    changed[pos] = changed[pos] == 'x' ? 'y' : 'x';
    WriteAll(changed_path, changed);
    const auto v = MustVerify(changed_path);
    CHECK_FALSE(v.ok);
    CHECK(v.first_bad_record == static_cast<std::int64_t>(record));
  }
}

TEST_CASE("a non-canonical encoding of the same content is refused", "[ledger]") {
  // 0.5 written as 5e-1: the same double, so the same content, but another text. VerifyLedger
  // insists on the canonical form; the hash alone would not notice.
  ScratchDir dir;
  const std::string path = dir.File("ledger.jsonl");
  {
    auto writer = LedgerWriter::Open(path);
    REQUIRE(writer.ok());
    LedgerRecord r;
    r.time = "2024-01-01T00:00:00Z";
    r.rewards = {{3, 0.5}};
    REQUIRE(writer->Append(r).ok());
  }
  std::string text = ReadAll(path);
  const std::size_t at = text.find("\"amount\":0.5}");
  REQUIRE(at != std::string::npos);
  text.replace(at + 9, 3, "5e-1");
  text = Rehash(text.substr(0, text.size() - 1)) + "\n";
  const auto v = MustVerifyContents(text);
  CHECK_FALSE(v.ok);
  CHECK(v.first_bad_record == 0);
  CHECK(v.problem == Prefix(0) +
                         "the line is not in the ledger's canonical form (first "
                         "difference at column " +
                         std::to_string(at + 10) + ")");
}

TEST_CASE("content changed and hash recomputed fails at the next record", "[ledger]") {
  ScratchDir dir;
  const std::string path = dir.File("ledger.jsonl");
  const auto want = WriteLedger(path, 5);
  const auto lines = SplitLines(ReadAll(path));

  for (std::size_t k = 0; k < 5; ++k) {
    INFO("record " << k);
    auto changed = lines;
    // The attacker inflates client 0's sample count and recomputes the record's hash.
    const std::string from =
        "{\"client\":0,\"sha256\":\"" + want[k].updates[0].sha256 + "\",\"samples\":";
    const std::size_t at = changed[k].find(from);
    REQUIRE(at != std::string::npos);
    changed[k].replace(at + from.size(), 0, "9");
    changed[k] = Rehash(changed[k]);
    const auto v = MustVerifyContents(JoinLines(changed));
    if (k < 4) {
      CHECK_FALSE(v.ok);
      CHECK(v.first_bad_record == static_cast<std::int64_t>(k + 1));
      CHECK(v.records == static_cast<std::int64_t>(k + 1));
      CHECK(v.problem == Prefix(k + 1) + "its prev does not match the hash of record " +
                             std::to_string(k) +
                             ": a record before it was changed, removed or reordered");
    } else {
      // The chain cannot see a rewritten last record: only an anchored last hash can.
      CHECK(v.ok);
      CHECK(v.records == 5);
      const std::string changed_path = dir.File("changed.jsonl");
      WriteAll(changed_path, JoinLines(changed));
      auto records = ReadLedger(changed_path);
      REQUIRE(records.ok());
      CHECK(records->back().updates[0].samples == 9000 + want.back().updates[0].samples);
      CHECK(records->back().hash != want.back().hash);  // what the anchor catches
    }
  }
}

TEST_CASE("reordered, deleted and duplicated lines fail at the right record", "[ledger]") {
  ScratchDir dir;
  const std::string path = dir.File("ledger.jsonl");
  WriteLedger(path, 5);
  const auto lines = SplitLines(ReadAll(path));

  SECTION("two middle lines swapped") {
    auto changed = lines;
    std::swap(changed[2], changed[3]);
    const auto v = MustVerifyContents(JoinLines(changed));
    CHECK(v.first_bad_record == 2);
    CHECK(v.first_bad_line == 3);
    CHECK(v.problem == Prefix(2) +
                           "seq is 3, expected 2 (records missing, repeated or out of "
                           "order)");
  }
  SECTION("the first two lines swapped") {
    auto changed = lines;
    std::swap(changed[0], changed[1]);
    const auto v = MustVerifyContents(JoinLines(changed));
    CHECK(v.first_bad_record == 0);
    CHECK(v.records == 0);
  }
  SECTION("a middle line deleted") {
    auto changed = lines;
    changed.erase(changed.begin() + 2);
    const auto v = MustVerifyContents(JoinLines(changed));
    CHECK(v.first_bad_record == 2);
    CHECK(v.problem == Prefix(2) +
                           "seq is 3, expected 2 (records missing, repeated or out of "
                           "order)");
  }
  SECTION("the first line deleted") {
    auto changed = lines;
    changed.erase(changed.begin());
    const auto v = MustVerifyContents(JoinLines(changed));
    CHECK(v.first_bad_record == 0);
  }
  SECTION("a line duplicated") {
    auto changed = lines;
    changed.insert(changed.begin() + 2, lines[2]);
    const auto v = MustVerifyContents(JoinLines(changed));
    CHECK(v.first_bad_record == 3);
    CHECK(v.problem == Prefix(3) +
                           "seq is 2, expected 3 (records missing, repeated or out of "
                           "order)");
  }
  SECTION("the last line duplicated") {
    auto changed = lines;
    changed.push_back(lines[4]);
    const auto v = MustVerifyContents(JoinLines(changed));
    CHECK(v.first_bad_record == 5);
  }
  SECTION("a line renumbered to fill a gap fails on its hash") {
    auto changed = lines;
    changed.erase(changed.begin() + 2);
    changed[2].replace(7, 1, "2");  // "seq":3 -> "seq":2
    const auto v = MustVerifyContents(JoinLines(changed));
    CHECK(v.first_bad_record == 2);
  }
  SECTION("a blank line") {
    auto changed = lines;
    changed.insert(changed.begin() + 1, "");
    const auto v = MustVerifyContents(JoinLines(changed));
    CHECK(v.problem == Prefix(1) + "an empty line");
  }
  SECTION("whole records cut off the end verify: the tail needs an anchor") {
    auto changed = lines;
    changed.pop_back();
    const auto v = MustVerifyContents(JoinLines(changed));
    CHECK(v.ok);
    CHECK(v.records == 4);
  }
}

TEST_CASE("a truncated last line is reported as such and Open refuses to append after it",
          "[ledger]") {
  ScratchDir dir;
  const std::string path = dir.File("ledger.jsonl");
  WriteLedger(path, 5);
  const std::string text = ReadAll(path);
  const std::size_t last_start = text.rfind('\n', text.size() - 2) + 1;

  // A crash can leave any prefix of the last line (what Append writes is one line).
  for (std::size_t cut = last_start + 1; cut < text.size(); ++cut) {
    const auto v = MustVerifyContents(text.substr(0, cut));
    if (v.ok || v.first_bad_record != 4 || !v.truncated) {
      FAIL("cut at " << cut << ": " << v.problem);
    }
  }
  {
    const auto v = MustVerifyContents(text.substr(0, last_start + 10));
    CHECK(v.records == 4);
    CHECK(v.first_bad_line == 5);
    CHECK(v.problem == Prefix(4) +
                           "the last line has no '\\n' at its end: it is truncated, a write cut "
                           "short (by a crash?); the records before it are intact");
  }
  {
    const auto v = MustVerifyContents(text.substr(0, text.size() - 1));  // only the '\n' lost
    CHECK(v.truncated);
    CHECK(v.first_bad_record == 4);
    CHECK(v.problem.find("its record is complete and verifies") != std::string::npos);
  }
  // Tampering is not truncation.
  {
    std::string changed = text;
    changed[last_start + 30] = changed[last_start + 30] == 'x' ? 'y' : 'x';
    const auto v = MustVerifyContents(changed);
    CHECK(v.first_bad_record == 4);
    CHECK_FALSE(v.truncated);
  }

  const std::string torn = text.substr(0, last_start + 100);
  WriteAll(path, torn);
  const auto v = MustVerify(path);
  CHECK(v.truncated);
  CHECK(v.first_bad_record == 4);
  auto writer = LedgerWriter::Open(path);
  REQUIRE_FALSE(writer.ok());
  CHECK(writer.status().code() == StatusCode::kDataLoss);
  CHECK(writer.status().message() ==
        "ledger '" + path + "' failed verification, not appending to it: " + v.problem);
  CHECK(ReadAll(path) == torn);  // nothing written
  auto records = ReadLedger(path);
  REQUIRE_FALSE(records.ok());
  CHECK(records.status().code() == StatusCode::kDataLoss);
}

TEST_CASE("Open continues an existing ledger", "[ledger]") {
  ScratchDir dir;
  const std::string path = dir.File("ledger.jsonl");
  auto first = WriteLedger(path, 3);

  auto writer = LedgerWriter::Open(path);
  REQUIRE(writer.ok());
  CHECK(writer->next_seq() == 3);
  CHECK(writer->last_hash() == first.back().hash);
  CHECK(writer->path() == path);

  // One writer per file.
  auto second = LedgerWriter::Open(path);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == StatusCode::kFailedPrecondition);

  REQUIRE(writer->Append(MakeRecord(3)).ok());
  LedgerWriter moved = std::move(*writer);
  REQUIRE(moved.Append(MakeRecord(4)).ok());
  CHECK(moved.next_seq() == 5);
  CHECK(writer->Append(MakeRecord(5)).code() == StatusCode::kFailedPrecondition);

  const auto v = MustVerify(path);
  CHECK(v.ok);
  CHECK(v.records == 5);
  auto records = ReadLedger(path);
  REQUIRE(records.ok());
  REQUIRE(records->size() == 5);
  for (std::size_t i = 0; i < 3; ++i) CheckSameRecord((*records)[i], first[i]);
  CHECK((*records)[3].seq == 3);
  CHECK((*records)[3].prev == first.back().hash);
  CHECK((*records)[4].prev == (*records)[3].hash);
  CHECK((*records)[4].hash == moved.last_hash());

  // An existing empty file is an empty ledger.
  const std::string empty = dir.File("empty.jsonl");
  WriteAll(empty, "");
  auto e = LedgerWriter::Open(empty);
  REQUIRE(e.ok());
  CHECK(e->next_seq() == 0);
  CHECK(e->last_hash() == kLedgerGenesisPrev);
  const auto ev = MustVerify(empty);
  CHECK(ev.ok);
  CHECK(ev.records == 0);
}

TEST_CASE("Open refuses a tampered ledger with VerifyLedger's report", "[ledger]") {
  ScratchDir dir;
  const std::string path = dir.File("ledger.jsonl");
  WriteLedger(path, 3);
  std::string text = ReadAll(path);
  text[text.find("\"samples\":101") + 11] = '9';
  WriteAll(path, text);
  auto writer = LedgerWriter::Open(path);
  REQUIRE_FALSE(writer.ok());
  CHECK(writer.status().code() == StatusCode::kDataLoss);
  CHECK(writer.status().message().find(
            Prefix(1) + "its hash does not match its content: the record was changed") !=
        std::string::npos);
  CHECK(ReadAll(path) == text);
}

TEST_CASE("Append refuses records it cannot write faithfully, and writes nothing", "[ledger]") {
  ScratchDir dir;
  const std::string path = dir.File("ledger.jsonl");
  auto writer = LedgerWriter::Open(path);
  REQUIRE(writer.ok());
  REQUIRE(writer->Append(MakeRecord(0)).ok());
  const std::string before = ReadAll(path);

  std::vector<LedgerRecord> bad(8, MakeRecord(1));
  bad[0].updates[0].sha256 = "abc";
  bad[1].updates[1].sha256 = std::string(64, 'A');
  bad[2].checks[0].result = "ok";
  bad[3].checks[1].distance = std::nan("");
  bad[4].rewards[0].amount = std::numeric_limits<double>::infinity();
  bad[5].stakes[0].stake = -std::numeric_limits<double>::infinity();
  bad[6].note = "bad utf-8 \xc3\x28";
  bad[7].time = "2024-13-01T00:00:00Z";
  for (std::size_t i = 0; i < bad.size(); ++i) {
    INFO("bad record " << i);
    const auto s = writer->Append(bad[i]);
    CHECK(s.code() == StatusCode::kInvalidArgument);
  }
  CHECK(writer->next_seq() == 1);
  CHECK(ReadAll(path) == before);
  REQUIRE(writer->Append(MakeRecord(1)).ok());
  CHECK(MustVerify(path).records == 2);
}

TEST_CASE("VerifyLedger, ReadLedger and Open report file errors", "[ledger]") {
  ScratchDir dir;
  auto missing = VerifyLedger(dir.File("missing.jsonl"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK(ReadLedger(dir.File("missing.jsonl")).status().code() == StatusCode::kNotFound);
  CHECK(VerifyLedger(dir.path()).status().code() == StatusCode::kInvalidArgument);
  CHECK(LedgerWriter::Open(dir.path()).status().code() == StatusCode::kInvalidArgument);
  CHECK(LedgerWriter::Open(dir.File("no/such/folder.jsonl")).status().code() ==
        StatusCode::kNotFound);
  CHECK(LedgerWriter::Open("").status().code() == StatusCode::kInvalidArgument);
  const auto empty = MustVerifyContents("");
  CHECK(empty.ok);
  CHECK(empty.records == 0);
}

TEST_CASE("garbage is refused with an error, without a crash", "[ledger]") {
  ScratchDir dir;
  const std::string path = dir.File("garbage.jsonl");
  auto refused = [&](const std::string& text, std::int64_t at = 0) {
    WriteAll(path, text);
    const auto v = MustVerify(path);
    CHECK_FALSE(v.ok);
    CHECK(v.first_bad_record == at);
    CHECK_FALSE(v.problem.empty());
    CHECK(LedgerWriter::Open(path).status().code() == StatusCode::kDataLoss);
    return v.problem;
  };

  std::mt19937 rng(12345);
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes(1 + rng() % 2000, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
    WriteAll(path, bytes);
    const auto v = MustVerify(path);
    CHECK_FALSE(v.ok);
  }
  CHECK(refused(std::string(4u << 20, 'x') + "\n") ==
        Prefix(0) + "not valid JSON at column 1: expected a value, found 'x'");
  CHECK(refused(std::string(4u << 20, '[') + "\n") ==
        Prefix(0) + "not valid JSON at column 4: nested deeper than the ledger format's 3 levels");
  CHECK(refused("{\"seq\":" + std::string(1u << 20, '[') + "\n") ==
        Prefix(0) + "not valid JSON at column 10: nested deeper than the ledger format's 3 levels");
  CHECK(refused(std::string(1u << 20, '{') + "\n") ==
        Prefix(0) + "not valid JSON at column 2: expected a member name in quotes, found '{'");
  CHECK(refused(std::string(1u << 20, '"') + "\n").find("not valid JSON") != std::string::npos);
  CHECK(refused("[]\n") == Prefix(0) + "the line is an array, expected a record object");
  CHECK(refused("{}\n") == Prefix(0) + "missing field 'seq'");
  CHECK(refused("{\"seq\":0}\n") == Prefix(0) + "missing field 'prev'");
  CHECK(refused("{\"seq\":0, \"prev\":1}\n") ==
        Prefix(0) + "not valid JSON at column 10: expected a member name in quotes, found ' '");
  CHECK(refused("{\"seq\":1e400}\n").find("missing field 'prev'") != std::string::npos);
  CHECK(refused("{\"seq\":\"\\ud800\"}\n") ==
        Prefix(0) + "not valid JSON at column 15: a high surrogate without its pair");
  CHECK(refused("{\"seq\":\"\xff\"}\n") ==
        Prefix(0) + "not valid JSON at column 9: a string that is not valid UTF-8");
  CHECK(refused("\n") == Prefix(0) + "an empty line");
  CHECK(refused("\r\n").find("not valid JSON at column 1") != std::string::npos);

  // A good record followed by garbage fails at the garbage.
  const std::string good_path = dir.File("good.jsonl");
  WriteLedger(good_path, 2);
  const std::string good = ReadAll(good_path);
  const auto lines = SplitLines(good);
  refused(good + "garbage\n", 2);
  // Fields: extra, missing, misplaced, of the wrong type.
  {
    std::string l = lines[0];
    l.insert(l.size() - 1, ",\"extra\":1");
    CHECK(refused(l + "\n") == Prefix(0) + "unexpected field 'extra' after 'hash'");
  }
  {
    std::string l = lines[0];
    const std::size_t a = l.find(",\"excluded\":");
    const std::size_t b = l.find(",\"rewards\":");
    l.erase(a, b - a);
    CHECK(refused(l + "\n") == Prefix(0) + "missing field 'excluded'");
  }
  {
    std::string l = lines[0];
    l.replace(l.find("\"round\":10"), 10, "\"round\":\"10\"");
    CHECK(refused(l + "\n") == Prefix(0) + "round is a string, expected an integer");
  }
  {
    std::string l = lines[0];
    l.replace(l.find("\"round\":10"), 10, "\"round\":1.0");
    CHECK(refused(l + "\n") == Prefix(0) + "round is '1.0', expected an integer");
  }
  {
    std::string l = lines[1];
    l.replace(l.find("\"result\":\"pass\""), 15, "\"result\":\"PASS\"");
    CHECK(refused(lines[0] + "\n" + Rehash(l) + "\n", 1) ==
          Prefix(1) + "checks[0].result is 'PASS', expected 'pass', 'fail' or 'mismatch'");
  }
  {
    std::string l = lines[0];
    const std::size_t at = l.find("\"sha256\":\"") + 10;
    l.replace(at, 64, std::string(64, 'G'));
    CHECK(refused(l + "\n") == Prefix(0) + "updates[0].sha256 is '" + std::string(40, 'G') +
                                   "'..., expected 64 lowercase hex digits");
  }
  {
    std::string l = lines[0];
    const std::size_t a = l.find("\"time\":\"") + 8;
    l.replace(a, 4, "24-0");
    CHECK(refused(l + "\n").find("time is '24-0") != std::string::npos);
  }
}
