// Per-round metrics, their JSON Lines file, and the terminal progress display.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "fedml/core/status.h"

namespace fedml::api {

struct RoundMetrics {
  std::int64_t round = 0;  // 1-based, as printed
  bool evaluated = false;  // test_* hold values only when true
  double test_accuracy = 0.0;
  double test_loss = 0.0;
  double train_loss = 0.0;       // sample-weighted mean over the round's clients
  double wall_seconds = 0.0;     // this round's wall time
  int clients = 0;               // updates aggregated
  int refused = 0;               // updates refused (stale, invalid)
  int dropped = 0;               // clients dropped from the round (gone, failed, past the deadline)
  std::uint64_t bytes_up = 0;    // frames received by the server this round
  std::uint64_t bytes_down = 0;  // frames sent by the server this round
  std::map<std::string, double> extra;  // strategy-specific figures
};

/// One JSON object per line, flushed after each round so a killed run keeps what it measured.
class MetricsFile {
 public:
  /// Opens (truncates) `path`; NOT_FOUND naming the path when it cannot be created.
  static Result<MetricsFile> Open(const std::string& path);
  Status Write(const RoundMetrics& m);

 private:
  std::shared_ptr<std::ofstream> out_;
  std::string path_;
};

/// The JSON object of one round (no trailing newline).
std::string ToJson(const RoundMetrics& m);

/// Progress on stdout: on a terminal one line redrawn in place (round, clients done, accuracy so
/// far); when piped, one plain line per round. Thread-compatible; call from one thread.
class ProgressDisplay {
 public:
  explicit ProgressDisplay(int total_rounds, std::FILE* out = stdout);
  void ClientDone(std::int64_t round, int done, int total);
  void RoundDone(const RoundMetrics& m);

 private:
  int total_rounds_;
  std::FILE* out_;
  bool tty_;
  double last_accuracy_ = -1.0;
};

}  // namespace fedml::api
