// The contribution ledger (fedml/core/security/ledger.h): writing, reading and verifying the
// hash-chained JSON Lines file. Why one file of this size: the writer and the verifier must agree
// byte for byte on the canonical line and the hash over it, so both live beside the one encoder.
#include "fedml/core/security/ledger.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <utility>

#include "fedml/core/json.h"
#include "openssl_util.h"

namespace fedml::core::security {
namespace {

constexpr std::size_t kHexHashChars = 64;
// `,"hash":"` + 64 hex + `"}`: how every canonical line ends.
constexpr std::size_t kHashSuffixBytes = 9 + kHexHashChars + 2;
// The format's nesting: the record object, an array in it, an object in that array.
constexpr int kMaxJsonDepth = 3;
constexpr std::size_t kReadChunkBytes = 64 * 1024;

// ---- small helpers -----------------------------------------------------------------------------

std::string ErrnoText(int err) { return std::strerror(err); }

// A status for a failed open/read/stat of `path`, with the code that fits errno.
Status FileError(int err, const std::string& what, const std::string& path) {
  std::string message = what + " '" + path + "': " + ErrnoText(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Status::NotFound(std::move(message));
    case EACCES:
    case EPERM:
    case EROFS:
      return Status::PermissionDenied(std::move(message));
    case EISDIR:
      return Status::InvalidArgument(std::move(message));
    case EIO:
      return Status::DataLoss(std::move(message));
    default:
      return Status::Internal(std::move(message));
  }
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

bool ValidTime(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z
  if (t.size() < 20) return false;
  auto digits = [&](std::size_t at, std::size_t n, int* value) {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      v = v * 10 + (t[i] - '0');
    }
    *value = v;
    return true;
  };
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(0, 4, &year) || t[4] != '-' || !digits(5, 2, &month) || t[7] != '-' ||
      !digits(8, 2, &day) || t[10] != 'T' || !digits(11, 2, &hour) || t[13] != ':' ||
      !digits(14, 2, &minute) || t[16] != ':' || !digits(17, 2, &second)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return false;
  }
  std::size_t i = 19;
  if (t[i] == '.') {
    ++i;
    const std::size_t start = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    if (i == start || i - start > 9) return false;
  }
  return i + 1 == t.size() && t[i] == 'Z';
}

std::string NowUtc() {
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  long frac = static_cast<long>(ms % 1000);
  if (frac < 0) frac += 1000, --secs;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

// ---- canonical writing -------------------------------------------------------------------------

// The canonical members of `r` before "hash", into an object left open: the hash covers this text
// closed by '}', and the line is this text followed by the "hash" member.
void WriteBody(const LedgerRecord& r, json::Writer* w) {
  w->BeginObject();
  w->Key("seq").Int(r.seq);
  w->Key("prev").String(r.prev);
  w->Key("round").Int(r.round);
  w->Key("time").String(r.time);
  w->Key("participants").BeginArray();
  for (std::int64_t id : r.participants) w->Int(id);
  w->EndArray();
  w->Key("updates").BeginArray();
  for (const LedgerUpdate& u : r.updates) {
    w->BeginObject();
    w->Key("client").Int(u.client).Key("sha256").String(u.sha256).Key("samples").Int(u.samples);
    w->EndObject();
  }
  w->EndArray();
  w->Key("checks").BeginArray();
  for (const LedgerCheck& c : r.checks) {
    w->BeginObject();
    w->Key("client").Int(c.client).Key("segment").Int(c.segment).Key("result").String(c.result);
    w->Key("distance").Double(c.distance).Key("threshold").Double(c.threshold);
    w->EndObject();
  }
  w->EndArray();
  w->Key("excluded").BeginArray();
  for (std::int64_t id : r.excluded) w->Int(id);
  w->EndArray();
  w->Key("rewards").BeginArray();
  for (const LedgerReward& x : r.rewards) {
    w->BeginObject().Key("client").Int(x.client).Key("amount").Double(x.amount).EndObject();
  }
  w->EndArray();
  w->Key("stakes").BeginArray();
  for (const LedgerStake& s : r.stakes) {
    w->BeginObject().Key("client").Int(s.client).Key("stake").Double(s.stake).EndObject();
  }
  w->EndArray();
  w->Key("note").String(r.note);
}

// Closes a WriteBody object with its "hash" member: the canonical line.
std::string WithHash(json::Writer* w, std::string_view hash) {
  w->Key("hash").String(hash).EndObject();
  return w->Take();
}

// How the chain reads a line: one canonical record, so no whitespace, at most three levels deep
// (the record, an array in it, an object in that array), in the words of its messages.
json::ParseOptions LineParseOptions() {
  json::ParseOptions o;
  o.max_depth = kMaxJsonDepth;
  o.max_bytes = kMaxLedgerLineBytes;
  o.allow_whitespace = false;
  o.input = "the line";
  o.top_value = "the record's closing '}'";
  o.depth_limit = "the ledger format's";
  return o;
}

// ---- the record's schema -----------------------------------------------------------------------

// Checks that `obj` is an object with exactly the members `names`, in that order.
bool CheckMembers(const json::Value& obj, const std::vector<std::string_view>& names,
                  const std::string& where, std::string* error) {
  if (obj.kind != json::Value::Kind::kObject) {
    *error = where + " is " + json::KindName(obj.kind) + ", expected an object";
    return false;
  }
  auto known = [&](const std::string& key) {
    for (auto n : names) {
      if (n == key) return true;
    }
    return false;
  };
  auto present = [&](std::string_view name) {
    for (const auto& m : obj.members) {
      if (m.first == name) return true;
    }
    return false;
  };
  const std::string in = where.empty() ? "" : " in " + where;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string missing = "missing field '" + std::string(names[i]) + "'" + in;
    if (i >= obj.members.size()) {
      *error = missing;
      return false;
    }
    const std::string& key = obj.members[i].first;
    if (key == names[i]) continue;
    if (!known(key)) {
      *error = "unexpected field " + json::DescribeBytes(key) + in;
    } else if (!present(names[i])) {
      *error = missing;
    } else {
      *error = "field '" + key + "' is out of place or repeated";
      *error += in;
      *error += " (field " + std::to_string(i + 1) + " must be '" + std::string(names[i]) + "')";
    }
    return false;
  }
  if (obj.members.size() > names.size()) {
    const std::string& key = obj.members[names.size()].first;
    *error = (known(key) ? "repeated field '" + key + "'"
                         : "unexpected field " + json::DescribeBytes(key)) +
             " after '" + std::string(names.back()) + "'" + in;
    return false;
  }
  return true;
}

bool GetInt64(const json::Value& v, const std::string& where, std::int64_t* out,
              std::string* error) {
  if (v.kind != json::Value::Kind::kNumber) {
    *error = where + " is " + json::KindName(v.kind) + ", expected an integer";
    return false;
  }
  if (v.text.find_first_of(".eE") != std::string::npos) {
    *error = where + " is " + json::DescribeBytes(v.text) + ", expected an integer";
    return false;
  }
  const auto r = std::from_chars(v.text.data(), v.text.data() + v.text.size(), *out);
  if (r.ec != std::errc() || r.ptr != v.text.data() + v.text.size()) {
    *error = where + " " + json::DescribeBytes(v.text) + " is out of range for a 64-bit integer";
    return false;
  }
  return true;
}

bool GetInt(const json::Value& v, const std::string& where, int* out, std::string* error) {
  std::int64_t wide = 0;
  if (!GetInt64(v, where, &wide, error)) return false;
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) {
    *error = where + " " + json::DescribeBytes(v.text) + " is out of range for a 32-bit integer";
    return false;
  }
  *out = static_cast<int>(wide);
  return true;
}

bool GetDouble(const json::Value& v, const std::string& where, double* out, std::string* error) {
  if (v.kind != json::Value::Kind::kNumber) {
    *error = where + " is " + json::KindName(v.kind) + ", expected a number";
    return false;
  }
  double d = 0;
  const auto r = std::from_chars(v.text.data(), v.text.data() + v.text.size(), d);
  if (r.ec != std::errc() || r.ptr != v.text.data() + v.text.size() || !std::isfinite(d)) {
    *error = where + " " + json::DescribeBytes(v.text) + " is not a finite double";
    return false;
  }
  *out = d;
  return true;
}

bool GetString(const json::Value& v, const std::string& where, std::string* out,
               std::string* error) {
  if (v.kind != json::Value::Kind::kString) {
    *error = where + " is " + json::KindName(v.kind) + ", expected a string";
    return false;
  }
  *out = v.text;
  return true;
}

bool GetHex64(const json::Value& v, const std::string& where, std::string* out,
              std::string* error) {
  if (!GetString(v, where, out, error)) return false;
  if (!IsSha256Hex(*out)) {
    *error = where + " is " + json::DescribeBytes(*out) + ", expected 64 lowercase hex digits";
    return false;
  }
  return true;
}

bool GetIntArray(const json::Value& v, const std::string& where, std::vector<std::int64_t>* out,
                 std::string* error) {
  if (v.kind != json::Value::Kind::kArray) {
    *error = where + " is " + json::KindName(v.kind) + ", expected an array of integers";
    return false;
  }
  out->resize(v.items.size());
  for (std::size_t i = 0; i < v.items.size(); ++i) {
    if (!GetInt64(v.items[i], where + "[" + std::to_string(i) + "]", &(*out)[i], error)) {
      return false;
    }
  }
  return true;
}

template <class T, class F>
bool GetObjectArray(const json::Value& v, const std::string& where,
                    const std::vector<std::string_view>& names, std::vector<T>* out, F&& one,
                    std::string* error) {
  if (v.kind != json::Value::Kind::kArray) {
    *error = where + " is " + json::KindName(v.kind) + ", expected an array of objects";
    return false;
  }
  out->resize(v.items.size());
  for (std::size_t i = 0; i < v.items.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (!CheckMembers(v.items[i], names, at, error)) return false;
    if (!one(v.items[i].members, at, &(*out)[i])) return false;
  }
  return true;
}

const std::vector<std::string_view>& RecordFields() {
  static const std::vector<std::string_view> kFields = {
      "seq",    "prev",     "round",   "time",   "participants", "updates",
      "checks", "excluded", "rewards", "stakes", "note",         "hash"};
  return kFields;
}

bool ValidResult(std::string_view r) { return r == "pass" || r == "fail" || r == "mismatch"; }

// The record in `v`, with every field present, in order, of the right type and form.
bool ToRecord(const json::Value& v, LedgerRecord* r, std::string* error) {
  if (v.kind != json::Value::Kind::kObject) {
    *error = std::string("the line is ") + json::KindName(v.kind) + ", expected a record object";
    return false;
  }
  if (!CheckMembers(v, RecordFields(), "", error)) return false;
  const auto& m = v.members;
  using Members = std::vector<std::pair<std::string, json::Value>>;
  if (!GetInt64(m[0].second, "seq", &r->seq, error) ||
      !GetHex64(m[1].second, "prev", &r->prev, error) ||
      !GetInt64(m[2].second, "round", &r->round, error) ||
      !GetString(m[3].second, "time", &r->time, error)) {
    return false;
  }
  if (!ValidTime(r->time)) {
    *error =
        "time is " + json::DescribeBytes(r->time) + ", expected YYYY-MM-DDTHH:MM:SS[.fraction]Z";
    return false;
  }
  if (!GetIntArray(m[4].second, "participants", &r->participants, error)) return false;
  if (!GetObjectArray(
          m[5].second, "updates", {"client", "sha256", "samples"}, &r->updates,
          [&](const Members& f, const std::string& at, LedgerUpdate* u) {
            return GetInt64(f[0].second, at + ".client", &u->client, error) &&
                   GetHex64(f[1].second, at + ".sha256", &u->sha256, error) &&
                   GetInt64(f[2].second, at + ".samples", &u->samples, error);
          },
          error)) {
    return false;
  }
  if (!GetObjectArray(
          m[6].second, "checks", {"client", "segment", "result", "distance", "threshold"},
          &r->checks,
          [&](const Members& f, const std::string& at, LedgerCheck* c) {
            if (!GetInt64(f[0].second, at + ".client", &c->client, error) ||
                !GetInt(f[1].second, at + ".segment", &c->segment, error) ||
                !GetString(f[2].second, at + ".result", &c->result, error)) {
              return false;
            }
            if (!ValidResult(c->result)) {
              *error = at + ".result is " + json::DescribeBytes(c->result) +
                       ", expected 'pass', 'fail' or 'mismatch'";
              return false;
            }
            return GetDouble(f[3].second, at + ".distance", &c->distance, error) &&
                   GetDouble(f[4].second, at + ".threshold", &c->threshold, error);
          },
          error)) {
    return false;
  }
  if (!GetIntArray(m[7].second, "excluded", &r->excluded, error)) return false;
  if (!GetObjectArray(
          m[8].second, "rewards", {"client", "amount"}, &r->rewards,
          [&](const Members& f, const std::string& at, LedgerReward* w) {
            return GetInt64(f[0].second, at + ".client", &w->client, error) &&
                   GetDouble(f[1].second, at + ".amount", &w->amount, error);
          },
          error)) {
    return false;
  }
  if (!GetObjectArray(
          m[9].second, "stakes", {"client", "stake"}, &r->stakes,
          [&](const Members& f, const std::string& at, LedgerStake* s) {
            return GetInt64(f[0].second, at + ".client", &s->client, error) &&
                   GetDouble(f[1].second, at + ".stake", &s->stake, error);
          },
          error)) {
    return false;
  }
  return GetString(m[10].second, "note", &r->note, error) &&
         GetHex64(m[11].second, "hash", &r->hash, error);
}

bool HexEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// ---- the chain ---------------------------------------------------------------------------------

// Checks lines one by one and stops at the first problem.
class ChainVerifier {
 public:
  explicit ChainVerifier(std::vector<LedgerRecord>* keep) : keep_(keep) {}

  bool done() const { return done_; }
  const LedgerVerification& result() const { return result_; }
  const std::string& last_hash() const { return last_hash_; }

  // One line without its '\n'; `terminated` says whether the '\n' was there.
  Status Line(std::string_view line, bool terminated) {
    if (done_) return Status::Ok();
    LedgerRecord record;
    std::string problem;
    FEDML_RETURN_IF_ERROR(Check(line, &record, &problem));
    if (!terminated) {
      std::string what =
          "the last line has no '\\n' at its end: it is truncated, a write cut "
          "short (by a crash?); the records before it are intact";
      if (problem.empty()) what += " (its record is complete and verifies; only the '\\n' is lost)";
      Stop(what, true);
      return Status::Ok();
    }
    if (!problem.empty()) {
      Stop(problem, false);
      return Status::Ok();
    }
    last_hash_ = record.hash;
    ++result_.records;
    if (keep_ != nullptr) keep_->push_back(std::move(record));
    return Status::Ok();
  }

  // A line longer than kMaxLedgerLineBytes at the current position.
  void TooLong() {
    Stop("the line is longer than " + std::to_string(kMaxLedgerLineBytes) + " bytes", false);
  }

 private:
  void Stop(const std::string& what, bool truncated) {
    done_ = true;
    result_.ok = false;
    result_.first_bad_record = result_.records;
    result_.first_bad_line = static_cast<int>(result_.records + 1);
    result_.truncated = truncated;
    result_.problem = "record " + std::to_string(result_.records) + " (line " +
                      std::to_string(result_.records + 1) + "): " + what;
  }

  // Leaves *problem empty when the line is a good next record.
  Status Check(std::string_view line, LedgerRecord* record, std::string* problem) {
    if (line.empty()) {
      *problem = "an empty line";
      return Status::Ok();
    }
    static const json::ParseOptions kLineOptions = LineParseOptions();
    json::Value value;
    json::ParseError error;
    if (!json::Parse(line, kLineOptions, &value, &error)) {
      // A line has no newline in it, so the offset is the column less one.
      *problem = "not valid JSON at column " + std::to_string(error.offset + 1) + ": " + error.what;
      return Status::Ok();
    }
    if (!ToRecord(value, record, problem)) return Status::Ok();
    const std::string canonical = LedgerRecordToJson(*record);
    if (canonical != line) {
      std::size_t i = 0;
      while (i < canonical.size() && i < line.size() && canonical[i] == line[i]) ++i;
      *problem = "the line is not in the ledger's canonical form (first difference at column " +
                 std::to_string(i + 1) + ")";
      return Status::Ok();
    }
    const std::int64_t expected = result_.records;
    if (record->seq != expected) {
      *problem = "seq is " + std::to_string(record->seq) + ", expected " +
                 std::to_string(expected) + " (records missing, repeated or out of order)";
      return Status::Ok();
    }
    if (!HexEqual(record->prev, last_hash_)) {
      *problem = expected == 0 ? "its prev is not 64 zeros, as the first record's must be"
                               : "its prev does not match the hash of record " +
                                     std::to_string(expected - 1) +
                                     ": a record before it was changed, removed or reordered";
      return Status::Ok();
    }
    // The canonical line ends in `,"hash":"<64 hex>"}`: hash what comes before, plus '}'.
    std::string hashed(line.substr(0, line.size() - kHashSuffixBytes));
    hashed.push_back('}');
    FEDML_ASSIGN_OR_RETURN(const std::string hash, Sha256Hex(hashed.data(), hashed.size()));
    if (!HexEqual(hash, record->hash)) {
      *problem = "its hash does not match its content: the record was changed";
    }
    return Status::Ok();
  }

  std::vector<LedgerRecord>* keep_;
  LedgerVerification result_;
  std::string last_hash_{kLedgerGenesisPrev};
  bool done_ = false;
};

// Feeds `contents` to `chain` line by line.
Status VerifyText(std::string_view contents, ChainVerifier* chain) {
  std::size_t start = 0;
  while (start < contents.size() && !chain->done()) {
    const std::size_t nl = contents.find('\n', start);
    const std::size_t end = nl == std::string_view::npos ? contents.size() : nl;
    if (end - start > kMaxLedgerLineBytes) {
      chain->TooLong();
      break;
    }
    FEDML_RETURN_IF_ERROR(
        chain->Line(contents.substr(start, end - start), nl != std::string_view::npos));
    start = end + 1;
  }
  return Status::Ok();
}

// Reads the file behind `fd` from its start (pread: the offset is left alone) and feeds it to
// `chain`. *size is the number of bytes read (the file's size when chain found nothing wrong).
Status VerifyFd(int fd, const std::string& path, ChainVerifier* chain, std::uint64_t* size) {
  std::string pending;  // the bytes of the current, unfinished line
  std::vector<char> chunk(kReadChunkBytes);
  std::uint64_t offset = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      if (err == EISDIR) return FileError(err, "cannot read ledger", path);
      return Status::DataLoss("reading ledger '" + path + "' failed: " + ErrnoText(err));
    }
    if (n == 0) break;
    offset += static_cast<std::uint64_t>(n);
    std::string_view data(chunk.data(), static_cast<std::size_t>(n));
    while (!data.empty() && !chain->done()) {
      const std::size_t nl = data.find('\n');
      if (nl == std::string_view::npos) {
        if (pending.size() + data.size() > kMaxLedgerLineBytes) {
          chain->TooLong();
          break;
        }
        pending.append(data);
        break;
      }
      if (pending.size() + nl > kMaxLedgerLineBytes) {
        chain->TooLong();
        break;
      }
      if (pending.empty()) {
        FEDML_RETURN_IF_ERROR(chain->Line(data.substr(0, nl), true));
      } else {
        pending.append(data.substr(0, nl));
        FEDML_RETURN_IF_ERROR(chain->Line(pending, true));
        pending.clear();
      }
      data.remove_prefix(nl + 1);
    }
    if (chain->done()) break;
  }
  if (!chain->done() && !pending.empty()) FEDML_RETURN_IF_ERROR(chain->Line(pending, false));
  *size = offset;
  return Status::Ok();
}

Status ValidateForAppend(const LedgerRecord& r) {
  auto utf8 = [](const std::string& s, const std::string& what) {
    return json::IsValidUtf8(s)
               ? Status::Ok()
               : Status::InvalidArgument("ledger record: " + what + " is not valid UTF-8");
  };
  auto finite = [](double d, const std::string& what) {
    return std::isfinite(d) ? Status::Ok()
                            : Status::InvalidArgument("ledger record: " + what +
                                                      " is not finite; only finite doubles can "
                                                      "be written");
  };
  if (!r.time.empty() && !ValidTime(r.time)) {
    return Status::InvalidArgument("ledger record: time " + json::DescribeBytes(r.time) +
                                   " is not YYYY-MM-DDTHH:MM:SS[.fraction]Z (or empty: now)");
  }
  FEDML_RETURN_IF_ERROR(utf8(r.note, "note"));
  for (std::size_t i = 0; i < r.updates.size(); ++i) {
    if (!IsSha256Hex(r.updates[i].sha256)) {
      return Status::InvalidArgument("ledger record: updates[" + std::to_string(i) +
                                     "].sha256 is not 64 lowercase hex digits");
    }
  }
  for (std::size_t i = 0; i < r.checks.size(); ++i) {
    const std::string at = "checks[" + std::to_string(i) + "]";
    if (!ValidResult(r.checks[i].result)) {
      return Status::InvalidArgument("ledger record: " + at + ".result is " +
                                     json::DescribeBytes(r.checks[i].result) +
                                     "; allowed: 'pass', 'fail', 'mismatch'");
    }
    FEDML_RETURN_IF_ERROR(finite(r.checks[i].distance, at + ".distance"));
    FEDML_RETURN_IF_ERROR(finite(r.checks[i].threshold, at + ".threshold"));
  }
  for (std::size_t i = 0; i < r.rewards.size(); ++i) {
    FEDML_RETURN_IF_ERROR(finite(r.rewards[i].amount, "rewards[" + std::to_string(i) + "].amount"));
  }
  for (std::size_t i = 0; i < r.stakes.size(); ++i) {
    FEDML_RETURN_IF_ERROR(finite(r.stakes[i].stake, "stakes[" + std::to_string(i) + "].stake"));
  }
  return Status::Ok();
}

// fsyncs the folder holding `path`, so that a newly created file survives a crash.
Status SyncParent(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = ".";
  Fd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return FileError(errno, "cannot open the folder of ledger", path);
  if (::fsync(dir.get()) != 0 && errno != EINVAL) {
    return Status::DataLoss("fsync of the folder of ledger '" + path +
                            "' failed: " + ErrnoText(errno));
  }
  return Status::Ok();
}

}  // namespace

// ---- public ------------------------------------------------------------------------------------

bool operator==(const LedgerUpdate& a, const LedgerUpdate& b) {
  return a.client == b.client && a.sha256 == b.sha256 && a.samples == b.samples;
}
bool operator==(const LedgerCheck& a, const LedgerCheck& b) {
  return a.client == b.client && a.segment == b.segment && a.result == b.result &&
         a.distance == b.distance && a.threshold == b.threshold;
}
bool operator==(const LedgerReward& a, const LedgerReward& b) {
  return a.client == b.client && a.amount == b.amount;
}
bool operator==(const LedgerStake& a, const LedgerStake& b) {
  return a.client == b.client && a.stake == b.stake;
}
bool operator==(const LedgerRecord& a, const LedgerRecord& b) {
  return a.seq == b.seq && a.prev == b.prev && a.round == b.round && a.time == b.time &&
         a.participants == b.participants && a.updates == b.updates && a.checks == b.checks &&
         a.excluded == b.excluded && a.rewards == b.rewards && a.stakes == b.stakes &&
         a.note == b.note && a.hash == b.hash;
}

std::string LedgerRecordToJson(const LedgerRecord& record) {
  json::Writer w;
  WriteBody(record, &w);
  return WithHash(&w, record.hash);
}

Result<LedgerVerification> VerifyLedgerContents(std::string_view contents) {
  ChainVerifier chain(nullptr);
  FEDML_RETURN_IF_ERROR(VerifyText(contents, &chain));
  return chain.result();
}

Result<LedgerVerification> VerifyLedger(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return FileError(errno, "cannot open ledger", path);
  ChainVerifier chain(nullptr);
  std::uint64_t size = 0;
  FEDML_RETURN_IF_ERROR(VerifyFd(fd.get(), path, &chain, &size));
  return chain.result();
}

Result<std::vector<LedgerRecord>> ReadLedger(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return FileError(errno, "cannot open ledger", path);
  std::vector<LedgerRecord> records;
  ChainVerifier chain(&records);
  std::uint64_t size = 0;
  FEDML_RETURN_IF_ERROR(VerifyFd(fd.get(), path, &chain, &size));
  if (!chain.result().ok) {
    return Status::DataLoss("ledger '" + path + "' failed verification: " + chain.result().problem);
  }
  return records;
}

LedgerWriter::LedgerWriter(std::string path, int fd, std::int64_t next_seq, std::string last_hash,
                           std::uint64_t size)
    : path_(std::move(path)),
      fd_(fd),
      next_seq_(next_seq),
      last_hash_(std::move(last_hash)),
      size_(size) {}

LedgerWriter::LedgerWriter(LedgerWriter&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      next_seq_(other.next_seq_),
      last_hash_(std::move(other.last_hash_)),
      size_(other.size_),
      failed_(other.failed_) {}

LedgerWriter& LedgerWriter::operator=(LedgerWriter&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    next_seq_ = other.next_seq_;
    last_hash_ = std::move(other.last_hash_);
    size_ = other.size_;
    failed_ = other.failed_;
  }
  return *this;
}

LedgerWriter::~LedgerWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Result<LedgerWriter> LedgerWriter::Open(const std::string& path) {
  if (path.empty()) return Status::InvalidArgument("ledger path is empty");
  bool created = true;
  int raw = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (raw < 0 && errno == EEXIST) {
    created = false;
    raw = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  }
  if (raw < 0) return FileError(errno, "cannot open ledger", path);
  Fd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return FileError(errno, "cannot stat ledger", path);
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("ledger '" + path + "' is not a regular file");
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Status::FailedPrecondition("ledger '" + path +
                                        "' is held by another LedgerWriter (flock)");
    }
    return FileError(errno, "cannot lock ledger", path);
  }
  if (created) FEDML_RETURN_IF_ERROR(SyncParent(path));
  ChainVerifier chain(nullptr);
  std::uint64_t size = 0;
  FEDML_RETURN_IF_ERROR(VerifyFd(fd.get(), path, &chain, &size));
  if (!chain.result().ok) {
    return Status::DataLoss("ledger '" + path + "' failed verification, not appending to it: " +
                            chain.result().problem);
  }
  return LedgerWriter(path, fd.release(), chain.result().records, chain.last_hash(), size);
}

Status LedgerWriter::Append(LedgerRecord record) {
  if (fd_ < 0) return Status::FailedPrecondition("LedgerWriter was moved from");
  if (failed_) {
    return Status::FailedPrecondition("ledger '" + path_ +
                                      "': an earlier write failed; reopen it to verify it");
  }
  FEDML_RETURN_IF_ERROR(ValidateForAppend(record));
  record.seq = next_seq_;
  record.prev = last_hash_;
  if (record.time.empty()) record.time = NowUtc();
  json::Writer w;
  WriteBody(record, &w);
  std::string hashed = w.text();
  hashed.push_back('}');
  FEDML_ASSIGN_OR_RETURN(record.hash, Sha256Hex(hashed.data(), hashed.size()));
  std::string line = WithHash(&w, record.hash);
  if (line.size() > kMaxLedgerLineBytes) {
    return Status::InvalidArgument("ledger record is " + std::to_string(line.size()) +
                                   " bytes long; at most " + std::to_string(kMaxLedgerLineBytes) +
                                   " allowed");
  }
  line.push_back('\n');

  std::size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      failed_ = true;
      // Cut off what part of the line did get written; a torn line stays if this fails too.
      if (written > 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) == 0) ::fsync(fd_);
      return Status::DataLoss("writing ledger '" + path_ + "' failed: " + ErrnoText(err));
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd_) != 0) {
    const int err = errno;
    failed_ = true;
    return Status::DataLoss("fsync of ledger '" + path_ + "' failed: " + ErrnoText(err));
  }
  size_ += line.size();
  ++next_seq_;
  last_hash_ = std::move(record.hash);
  return Status::Ok();
}

}  // namespace fedml::core::security
