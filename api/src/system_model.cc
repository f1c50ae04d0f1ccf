#include "fedml/api/system_model.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "fedml/core/random.h"
#include "fedml/core/text.h"

namespace fedml::api {
namespace {

constexpr double kBytesPerMbps = 1e6 / 8.0;

using core::ParseFiniteDouble;
using core::SplitTrimmed;
using core::Trim;

Status CheckPositive(const char* key, double v) {
  if (!(v > 0.0) || !std::isfinite(v)) {
    return Status::InvalidArgument(std::string(key) + " must be a finite number > 0, got " +
                                   std::to_string(v));
  }
  return Status::Ok();
}

Result<std::vector<std::pair<double, double>>> ParseWindows(const std::string& text,
                                                            const std::string& where) {
  std::vector<std::pair<double, double>> windows;
  if (text.empty()) return windows;
  for (const std::string& item : SplitTrimmed(text, ';')) {
    const auto dash = item.find('-', 1);  // a leading '-' would be a sign
    double start = 0;
    double end = 0;
    if (dash == std::string::npos || !ParseFiniteDouble(item.substr(0, dash), &start) ||
        !ParseFiniteDouble(item.substr(dash + 1), &end) || start < 0 || end <= start) {
      std::string what = where;
      what += ": online window '" + item;
      what += "' is not START-END with 0 <= START < END (virtual seconds)";
      return Status::InvalidArgument(what);
    }
    windows.emplace_back(start, end);
  }
  std::sort(windows.begin(), windows.end());
  for (std::size_t i = 1; i < windows.size(); ++i) {
    if (windows[i].first < windows[i - 1].second) {
      return Status::InvalidArgument(where + ": online windows overlap");
    }
  }
  return windows;
}

Result<std::vector<ClientSystem>> ReadTrace(const std::string& path, int num_clients) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("trace_file '" + path + "' cannot be read");
  std::vector<ClientSystem> clients(static_cast<std::size_t>(num_clients));
  std::vector<bool> seen(clients.size(), false);
  std::string line;
  int line_no = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++line_no;
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    const std::string where = path + ":" + std::to_string(line_no);
    const std::vector<std::string> f = SplitTrimmed(line, ',');
    if (!header) {
      if (f != std::vector<std::string>{"client_id", "samples_per_second", "bandwidth_mbps",
                                        "available"}) {
        return Status::InvalidArgument(
            where + ": expected the header client_id,samples_per_second,bandwidth_mbps,available");
      }
      header = true;
      continue;
    }
    if (f.size() != 4) {
      return Status::InvalidArgument(where + ": expected 4 fields, got " +
                                     std::to_string(f.size()));
    }
    double id = 0;
    double speed = 0;
    double mbps = 0;
    if (!ParseFiniteDouble(f[0], &id) || id != std::floor(id) || id < 0 || id >= num_clients) {
      return Status::InvalidArgument(where + ": client_id '" + f[0] +
                                     "' is not an integer in [0, " + std::to_string(num_clients) +
                                     ") (client_num_in_total)");
    }
    if (!ParseFiniteDouble(f[1], &speed) || speed <= 0) {
      return Status::InvalidArgument(where + ": samples_per_second '" + f[1] +
                                     "' must be a number > 0");
    }
    if (!ParseFiniteDouble(f[2], &mbps) || mbps <= 0) {
      return Status::InvalidArgument(where + ": bandwidth_mbps '" + f[2] +
                                     "' must be a number > 0");
    }
    const auto c = static_cast<std::size_t>(id);
    if (seen[c]) return Status::InvalidArgument(where + ": client " + f[0] + " is listed twice");
    seen[c] = true;
    clients[c].samples_per_second = speed;
    clients[c].bytes_per_second = mbps * kBytesPerMbps;
    FEDML_ASSIGN_OR_RETURN(clients[c].windows, ParseWindows(f[3], where));
  }
  if (!header) return Status::InvalidArgument("trace_file '" + path + "' is empty");
  const auto missing = std::find(seen.begin(), seen.end(), false);
  if (missing != seen.end()) {
    return Status::InvalidArgument("trace_file '" + path + "' has no row for client " +
                                   std::to_string(missing - seen.begin()) + " (it needs one per " +
                                   "client 0.." + std::to_string(num_clients - 1) + ")");
  }
  return clients;
}

}  // namespace

Result<SystemModel> SystemModel::Create(const SystemModelOptions& o) {
  if (o.num_clients < 1) return Status::InvalidArgument("the system model needs >= 1 client");
  SystemModel model;
  if (o.heterogeneity == "trace") {
    if (o.trace_file.empty()) {
      return Status::InvalidArgument("heterogeneity trace needs trace_file (a CSV)");
    }
    FEDML_ASSIGN_OR_RETURN(model.clients_, ReadTrace(o.trace_file, o.num_clients));
  } else if (o.heterogeneity == "none" || o.heterogeneity == "lognormal") {
    FEDML_RETURN_IF_ERROR(CheckPositive("compute_speed", o.compute_speed));
    FEDML_RETURN_IF_ERROR(CheckPositive("bandwidth_mbps", o.bandwidth_mbps));
    for (const auto& [key, sigma] : {std::pair<const char*, double>{"speed_sigma", o.speed_sigma},
                                     {"bandwidth_sigma", o.bandwidth_sigma}}) {
      if (!(sigma >= 0.0) || !std::isfinite(sigma)) {
        return Status::InvalidArgument(std::string(key) + " must be a finite number >= 0, got " +
                                       std::to_string(sigma));
      }
    }
    const bool lognormal = o.heterogeneity == "lognormal";
    model.clients_.resize(static_cast<std::size_t>(o.num_clients));
    for (int c = 0; c < o.num_clients; ++c) {
      // One generator per client, so a client's device does not depend on how many there are.
      core::Rng rng(
          core::DeriveSeed(o.seed, {0x737973ULL /* "sys" */, static_cast<std::uint64_t>(c)}));
      const double zs = rng.Normal();
      const double zb = rng.Normal();
      ClientSystem& s = model.clients_[static_cast<std::size_t>(c)];
      s.samples_per_second = o.compute_speed * (lognormal ? std::exp(o.speed_sigma * zs) : 1.0);
      s.bytes_per_second =
          o.bandwidth_mbps * kBytesPerMbps * (lognormal ? std::exp(o.bandwidth_sigma * zb) : 1.0);
    }
  } else {
    return Status::InvalidArgument("heterogeneity '" + o.heterogeneity +
                                   "' is not known; allowed: none, lognormal, trace");
  }
  for (const ClientSystem& c : model.clients_) model.has_offline_ |= !c.windows.empty();
  return model;
}

double SystemModel::TaskSeconds(std::int64_t id, double samples, std::uint64_t bytes_down,
                                std::uint64_t bytes_up) const {
  const ClientSystem& c = client(id);
  return samples / c.samples_per_second +
         static_cast<double>(bytes_down + bytes_up) / c.bytes_per_second;
}

bool SystemModel::AvailableAt(std::int64_t id, double t) const {
  const auto& w = client(id).windows;
  if (w.empty()) return true;
  return std::any_of(w.begin(), w.end(),
                     [t](const auto& p) { return p.first <= t && t < p.second; });
}

double SystemModel::OnlineUntil(std::int64_t id, double t) const {
  const auto& w = client(id).windows;
  if (w.empty()) return kNever;
  for (const auto& [start, end] : w) {
    if (start <= t && t < end) return end;
  }
  return t;
}

double SystemModel::NextOnline(std::int64_t id, double t) const {
  const auto& w = client(id).windows;
  if (w.empty()) return t;
  for (const auto& [start, end] : w) {
    if (t < end) return std::max(t, start);
  }
  return kNever;
}

}  // namespace fedml::api
