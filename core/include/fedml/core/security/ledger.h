// A tamper-evident, append-only contribution ledger: one record per round with its participants,
// the SHA-256 of each update, the spot checks run and their results, the clients excluded, the
// rewards earned and the stakes held. One building block of "verified work".
//
// FORMAT. JSON Lines: UTF-8, one record per line, every line (the last one included) ended by a
// single '\n', no blank lines, no whitespace outside strings. A record is written in exactly one
// canonical form, members in this order:
//
//   {"seq":N,"prev":"<64 hex>","round":R,"time":"<ISO-8601 UTC>","participants":[ids],
//    "updates":[{"client":id,"sha256":"<64 hex>","samples":n}],
//    "checks":[{"client":id,"segment":s,"result":"pass"|"fail"|"mismatch","distance":d,
//               "threshold":t}],
//    "excluded":[ids],"rewards":[{"client":id,"amount":x}],"stakes":[{"client":id,"stake":x}],
//    "note":"<free text>","hash":"<64 hex>"}
//
// (shown wrapped here; on disk it is one line). Canonical values:
//   - integers (seq, round, ids, samples, segment): decimal, '-' for negatives, no '+', no leading
//     zeros ("0" for zero), no fraction or exponent;
//   - doubles (distance, threshold, amount, stake): finite only, written as C's printf("%.17g")
//     in the "C" locale (std::to_chars general, precision 17), so that they read back exactly;
//   - strings: the UTF-8 bytes themselves, except '"' -> \", '\' -> \\, and the control
//     characters U+0000..U+001F: \b \f \n \r \t for those five, \u00xx (lowercase hex) for the
//     rest; nothing else is escaped (not '/', not DEL, not non-ASCII);
//   - hex (prev, hash, sha256): exactly 64 lowercase hex digits;
//   - time: "YYYY-MM-DDTHH:MM:SS" with an optional fraction of 1 to 9 digits, then "Z";
//   - arrays are written "[a,b]", "[]" when empty; objects as shown, no member left out.
// seq is 0 for the first record and counts up by one; prev is the hash of the record before it,
// or 64 '0's for seq 0.
//
// HASH. A record's hash is the lowercase hex SHA-256 of its canonical JSON text with the "hash"
// member left out, i.e. of the bytes
//     {"seq":...,"note":"..."}
// Every line ends in `,"hash":"<64 hex>"}` (75 bytes), so an outside tool verifies a line L
// (without its '\n') as: hash == hex(SHA-256(L[0 .. len(L)-75) + "}")), where hash is the 64
// characters L[len(L)-66 .. len(L)-2); it must also check that L is canonical (a verifier that
// skips this still detects every change to a record's content, but accepts re-encodings of the
// same content).
//
// WHAT THE CHAIN PROTECTS. Every record's hash covers its prev, so changing any byte of record k
// makes record k fail verification; changing record k's content and recomputing its hash makes
// record k+1 fail (its prev no longer matches). The chain alone cannot protect its tail: an
// attacker can rewrite the last record (or records k..end) and recompute their hashes, or drop
// whole records from the end. Anchor the last hash elsewhere -- print it in the run's summary,
// send it to the clients, sign it -- and compare it against LedgerWriter::last_hash() or the last
// ReadLedger record to protect the tail.
//
// A crash while appending leaves at most one torn last line (a prefix of the record, without its
// '\n'); VerifyLedger reports that as truncated, distinct from tampering, and LedgerWriter::Open
// refuses to append after it (cut the torn line off by hand, after looking at it, to go on).
//
// The JSON is fedml/core/json.h's: its Writer writes the canonical form above (doubles with
// json::kRoundTripDigits), and its parser reads lines with no whitespace and at most three levels
// of nesting, so that a tampered file costs bounded time and memory.
//
// Cryptography is OpenSSL 3's (EVP_Digest, CRYPTO_memcmp); this header does not include OpenSSL's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fedml/core/security/crypto.h"
#include "fedml/core/status.h"

namespace fedml::core::security {

/// The longest line (record) VerifyLedger reads and LedgerWriter::Append writes, '\n' excluded.
inline constexpr std::size_t kMaxLedgerLineBytes = 64u << 20;
/// prev of the record with seq 0: 64 '0's.
inline constexpr std::string_view kLedgerGenesisPrev =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// One client's update in a round: the SHA-256 (64 lowercase hex) of the bytes it sent, and the
/// number of samples it reported.
struct LedgerUpdate {
  std::int64_t client = 0;
  std::string sha256;
  std::int64_t samples = 0;
};

/// A spot check of one segment of a client's work: result is "pass", "fail" or "mismatch";
/// distance is what was measured and threshold what it was compared with (finite doubles).
struct LedgerCheck {
  std::int64_t client = 0;
  int segment = 0;
  std::string result;
  double distance = 0;
  double threshold = 0;
};

/// What a client earned in the round (finite).
struct LedgerReward {
  std::int64_t client = 0;
  double amount = 0;
};

/// What a client has at stake after the round (finite).
struct LedgerStake {
  std::int64_t client = 0;
  double stake = 0;
};

/// One line of the ledger. seq, prev and hash are the chain's (LedgerWriter::Append fills them);
/// the rest is the caller's. Vectors keep the caller's order (nothing is sorted or deduplicated).
struct LedgerRecord {
  std::int64_t seq = 0;
  std::string prev;
  std::int64_t round = 0;
  std::string time;  // ISO-8601 UTC, see FORMAT; Append fills it in when empty
  std::vector<std::int64_t> participants;
  std::vector<LedgerUpdate> updates;
  std::vector<LedgerCheck> checks;
  std::vector<std::int64_t> excluded;
  std::vector<LedgerReward> rewards;
  std::vector<LedgerStake> stakes;
  std::string note;  // free text, any valid UTF-8
  std::string hash;
};

// Field-by-field equality (doubles with ==).
bool operator==(const LedgerUpdate& a, const LedgerUpdate& b);
bool operator==(const LedgerCheck& a, const LedgerCheck& b);
bool operator==(const LedgerReward& a, const LedgerReward& b);
bool operator==(const LedgerStake& a, const LedgerStake& b);
bool operator==(const LedgerRecord& a, const LedgerRecord& b);
inline bool operator!=(const LedgerRecord& a, const LedgerRecord& b) { return !(a == b); }

/// The record's canonical line (see FORMAT), without the '\n', with record.hash as it is (the
/// hash is not computed here). Meant for records that Append would accept; for others (a
/// non-finite double, invalid UTF-8) the text is not a valid ledger line. Thread-safe.
std::string LedgerRecordToJson(const LedgerRecord& record);

/// The outcome of checking a ledger.
struct LedgerVerification {
  bool ok = true;
  /// ok: the number of records. Otherwise the number of good records before the bad one (which
  /// equals first_bad_record).
  std::int64_t records = 0;
  /// The 0-based index of the first bad line among the record lines, i.e. the seq that line
  /// should have had; -1 when ok.
  std::int64_t first_bad_record = -1;
  /// Its 1-based line number (first_bad_record + 1); 0 when ok.
  int first_bad_line = 0;
  /// True when the first problem is a torn last line (no '\n' at its end: a write cut short, e.g.
  /// by a crash), not tampering; the records before it are intact.
  bool truncated = false;
  /// Empty when ok; otherwise "record K (line L): what is wrong", naming the field or the
  /// 1-based byte column where that helps.
  std::string problem;
};

/// Checks every line of the ledger at `path` and reports the first bad one (a ledger with no
/// records -- an empty file -- is ok): a line that is not JSON (with the column), a missing,
/// unexpected or misplaced field, a value of the wrong type or form, a line not in canonical
/// form, seq not equal to its line's index, prev not equal to the previous record's hash, a hash
/// that does not match the content ("record 7 (line 8): its hash does not match its content: the
/// record was changed"), a line longer than kMaxLedgerLineBytes, or a truncated last line.
/// Reads the file once, in chunks (memory: the longest line). Hashes are compared with
/// CRYPTO_memcmp. Thread-safe; a ledger being appended to may show a torn last line.
/// Errors (the Status, as opposed to a report with ok == false): NOT_FOUND when the file does
/// not exist; PERMISSION_DENIED when it cannot be read for that reason; INVALID_ARGUMENT when
/// it is a directory; DATA_LOSS for a read error; INTERNAL when OpenSSL fails.
Result<LedgerVerification> VerifyLedger(const std::string& path);

/// VerifyLedger for a ledger's bytes held in memory (for instance received over the network).
/// Errors: INTERNAL when OpenSSL fails.
Result<LedgerVerification> VerifyLedgerContents(std::string_view contents);

/// The ledger's records, verified as VerifyLedger does, in file order. Errors: VerifyLedger's,
/// and DATA_LOSS "ledger '<path>' failed verification: <problem>" when it is not ok.
Result<std::vector<LedgerRecord>> ReadLedger(const std::string& path);

/// Appends records to a ledger file. Owns an open file descriptor holding an exclusive flock on
/// the file (so a second LedgerWriter on the same file, in this or another process, is refused);
/// both are released when the writer is destroyed. Movable, not copyable; a moved-from writer
/// refuses Append with FAILED_PRECONDITION. Use one writer from one thread at a time (no
/// internal locking).
class LedgerWriter {
 public:
  /// Opens the ledger at `path` for appending. A missing file is created (mode 0644 less the
  /// umask; its folder is fsync'ed so that it survives a crash). An existing file is verified
  /// first, completely, and the writer continues after its last record.
  /// Errors: DATA_LOSS "ledger '<path>' failed verification, not appending to it: <problem>"
  /// when the existing file is damaged, tampered with or ends in a torn line (VerifyLedger's
  /// report); FAILED_PRECONDITION when another writer holds the file; NOT_FOUND when its folder
  /// does not exist; PERMISSION_DENIED; INVALID_ARGUMENT when path is empty or a directory;
  /// DATA_LOSS for a read error; INTERNAL otherwise.
  static Result<LedgerWriter> Open(const std::string& path);

  LedgerWriter(LedgerWriter&& other) noexcept;
  LedgerWriter& operator=(LedgerWriter&& other) noexcept;
  LedgerWriter(const LedgerWriter&) = delete;
  LedgerWriter& operator=(const LedgerWriter&) = delete;
  ~LedgerWriter();

  /// Appends `record`: sets seq to next_seq() and prev to last_hash() (whatever the caller put
  /// there), time to the current UTC time ("YYYY-MM-DDTHH:MM:SS.mmmZ") when it is empty, and
  /// hash as FORMAT says; writes the line with its '\n' and fsyncs the file before returning, so
  /// that a crash leaves whole records and at most one torn last line.
  /// Errors, with nothing written: INVALID_ARGUMENT when a string is not valid UTF-8, an update's
  /// sha256 is not 64 lowercase hex, a check's result is not "pass"/"fail"/"mismatch", a double
  /// is not finite, a non-empty time is not in FORMAT's form, or the line would be longer than
  /// kMaxLedgerLineBytes; FAILED_PRECONDITION on a moved-from writer or after an earlier write
  /// error; INTERNAL when OpenSSL fails.
  /// DATA_LOSS naming the path when writing or fsyncing fails: the record may or may not be on
  /// disk (a partial line is cut off where possible) and the writer refuses every later Append;
  /// reopen the ledger (Open verifies it) to find out where it stands.
  Status Append(LedgerRecord record);

  /// The seq the next record gets (the number of records in the ledger).
  std::int64_t next_seq() const { return next_seq_; }
  /// The hash of the last record, or kLedgerGenesisPrev for an empty ledger: the value to anchor
  /// outside the ledger (see WHAT THE CHAIN PROTECTS).
  const std::string& last_hash() const { return last_hash_; }
  const std::string& path() const { return path_; }

 private:
  LedgerWriter(std::string path, int fd, std::int64_t next_seq, std::string last_hash,
               std::uint64_t size);

  std::string path_;
  int fd_ = -1;
  std::int64_t next_seq_ = 0;
  std::string last_hash_;
  std::uint64_t size_ = 0;  // bytes in the file
  bool failed_ = false;     // an earlier write or fsync failed
};

}  // namespace fedml::core::security
