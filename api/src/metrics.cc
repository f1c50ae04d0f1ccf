#include "fedml/api/metrics.h"

#include <unistd.h>

#include <filesystem>

#include "fedml/core/json.h"

namespace fedml::api {

std::string ToJson(const RoundMetrics& m) {
  // Figures are written with 10 significant digits (%.10g), as metrics_file rows always were;
  // a figure that is not finite is null.
  constexpr int kDigits = 10;
  core::json::Writer w;
  w.BeginObject().Key("round").Int(m.round);
  w.Key("test_accuracy");
  m.evaluated ? w.Double(m.test_accuracy, kDigits) : w.Null();
  w.Key("test_loss");
  m.evaluated ? w.Double(m.test_loss, kDigits) : w.Null();
  w.Key("train_loss").Double(m.train_loss, kDigits);
  w.Key("wall_seconds").Double(m.wall_seconds, kDigits);
  w.Key("clients").Int(m.clients).Key("refused").Int(m.refused).Key("dropped").Int(m.dropped);
  w.Key("bytes_up").Uint(m.bytes_up).Key("bytes_down").Uint(m.bytes_down);
  for (const auto& [k, v] : m.extra) w.Key(k).Double(v, kDigits);
  w.EndObject();
  return w.Take();
}

Result<MetricsFile> MetricsFile::Open(const std::string& path) {
  MetricsFile f;
  f.path_ = path;
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  f.out_ = std::make_shared<std::ofstream>(path, std::ios::trunc);
  if (!*f.out_) return Status::NotFound("cannot create metrics_file '" + path + "'");
  return f;
}

Status MetricsFile::Write(const RoundMetrics& m) {
  *out_ << ToJson(m) << '\n';
  out_->flush();
  if (!*out_) return Status::DataLoss("writing metrics_file '" + path_ + "' failed");
  return Status::Ok();
}

ProgressDisplay::ProgressDisplay(int total_rounds, std::FILE* out)
    : total_rounds_(total_rounds), out_(out), tty_(isatty(fileno(out)) != 0) {}

void ProgressDisplay::ClientDone(std::int64_t round, int done, int total) {
  if (!tty_) return;
  std::fprintf(out_, "\r\033[Kround %lld/%d  clients %d/%d", static_cast<long long>(round),
               total_rounds_, done, total);
  if (last_accuracy_ >= 0) std::fprintf(out_, "  test_acc %.4f", last_accuracy_);
  std::fflush(out_);
}

void ProgressDisplay::RoundDone(const RoundMetrics& m) {
  if (m.evaluated) last_accuracy_ = m.test_accuracy;
  if (tty_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "round %lld/%d  clients %d  train_loss %.4f", static_cast<long long>(m.round),
               total_rounds_, m.clients, m.train_loss);
  if (m.evaluated)
    std::fprintf(out_, "  test_acc %.4f  test_loss %.4f", m.test_accuracy, m.test_loss);
  std::fprintf(out_, "  %.2fs\n", m.wall_seconds);
  std::fflush(out_);
}

}  // namespace fedml::api
