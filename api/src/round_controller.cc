#include "fedml/api/round_controller.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>

#include "fedml/api/compatibility.h"
#include "fedml/core/random.h"
#include "fedml/core/security/commitment.h"
#include "fedml/core/security/credentials.h"
#include "secure/server_round.h"
#include "server/async_rounds.h"
#include "server/ledger_observer.h"
#include "server/server_context.h"
#include "server/sync_rounds.h"
#include "server/tier_fit.h"
#include "server/worker_pool.h"
#include "verification/server_gate.h"

namespace fedml::api {

using core::Message;
using core::MessageType;

std::vector<std::int64_t> SampleClientsAmong(std::uint64_t seed, std::int64_t round,
                                             const std::vector<std::int64_t>& candidates,
                                             int per_round) {
  const auto n = static_cast<std::int64_t>(candidates.size());
  if (per_round >= n) return candidates;
  core::Rng rng(core::DeriveSeed(
      seed, {0x73616d706c65ULL /* "sample" */, static_cast<std::uint64_t>(round)}));
  std::vector<std::int64_t> out;
  for (std::int64_t pos : rng.SampleWithoutReplacement(n, per_round)) {
    out.push_back(candidates[static_cast<std::size_t>(pos)]);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<std::int64_t>> SampleClientsSecretly(const std::vector<std::int64_t>& candidates,
                                                        int per_round) {
  const auto n = static_cast<std::int64_t>(candidates.size());
  if (per_round >= n) return candidates;
  std::vector<std::int64_t> pool = candidates;
  const std::int64_t k = std::max(0, per_round);
  for (std::int64_t i = 0; i < k; ++i) {
    // A partial Fisher-Yates shuffle; draws at or above the largest multiple of the range are
    // redrawn, so every index is equally likely.
    const auto range = static_cast<std::uint64_t>(n - i);
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % range;
    std::uint64_t r = 0;
    do {
      FEDML_ASSIGN_OR_RETURN(r, core::security::SecureRandomU64());
    } while (r >= limit);
    std::swap(pool[static_cast<std::size_t>(i)], pool[static_cast<std::size_t>(i) + r % range]);
  }
  pool.resize(static_cast<std::size_t>(k));
  std::sort(pool.begin(), pool.end());
  return pool;
}

std::vector<std::int64_t> SampleClients(std::uint64_t seed, std::int64_t round, int total,
                                        int per_round) {
  std::vector<std::int64_t> all(static_cast<std::size_t>(std::max(0, total)));
  std::iota(all.begin(), all.end(), 0);
  return SampleClientsAmong(seed, round, all, per_round);
}

// What Run composes, for its length: the worker pool, the ledger observer, the verification gate
// and the context the round drivers share.
struct RoundController::Impl {
  core::Communicator& comm;
  std::unique_ptr<algorithms::Aggregator> aggregator;
  ServerOptions options;
  GlobalEvaluator evaluator;
  std::vector<RoundMetrics> history;
  std::function<void(std::int64_t, int, int)> on_progress;
  std::function<void(const RoundMetrics&)> on_round;

  /// What the options ask for that cannot run, checked before the first round.
  Status CheckOptions() const;
};

RoundController::RoundController(core::Communicator& comm,
                                 std::unique_ptr<algorithms::Aggregator> aggregator,
                                 ServerOptions options, GlobalEvaluator evaluator)
    : impl_(new Impl{
          comm, std::move(aggregator), std::move(options), std::move(evaluator), {}, {}, {}}) {}

RoundController::~RoundController() = default;

void RoundController::OnProgress(std::function<void(std::int64_t, int, int)> cb) {
  impl_->on_progress = std::move(cb);
}

void RoundController::OnRoundEnd(std::function<void(const RoundMetrics&)> cb) {
  impl_->on_round = std::move(cb);
}

const std::vector<RoundMetrics>& RoundController::history() const { return impl_->history; }

Status RoundController::Impl::CheckOptions() const {
  if (comm.world_size() < 2) {
    return Status::InvalidArgument("the server needs at least one worker rank (world size " +
                                   std::to_string(comm.world_size()) + ")");
  }
  if (options.over_selection > 1.0 && !options.fixed_clients) {
    // Which clients reply first is a matter of timing, which a simulation's result must not
    // depend on (the same config and seed give the same model on every backend).
    return Status::InvalidArgument(
        "over_selection " + std::to_string(options.over_selection) +
        " applies to a deployed server's rounds (fedml server); simulation and MPI runs wait for "
        "every sampled client, so leave it at 1 there");
  }
  if (options.aggregators > 0 &&
      (!options.fixed_clients || comm.world_size() != options.aggregators + 1)) {
    return Status::InvalidArgument(
        "aggregators " + std::to_string(options.aggregators) +
        " (an aggregation tier) needs a deployed server (fixed_clients) whose transport has one "
        "rank per aggregator (world size " +
        std::to_string(options.aggregators + 1) + ", not " + std::to_string(comm.world_size()) +
        ")");
  }
  return Status::Ok();
}

namespace {

// What the controller's options and aggregator combine, for the compatibility table (a program
// may build its options without a Config, so the table is consulted here too).
RunFeatures FeaturesOf(const ServerOptions& options, const algorithms::Aggregator& agg) {
  RunFeatures f;
  f.strategy = agg.name();
  f.asynchronous = options.async.enabled;
  f.linear = agg.is_linear();
  f.secure = options.secure.protocol;
  f.verification = options.verification.enabled;
  f.over_selection = options.over_selection;
  f.tier = options.aggregators > 0;
  return f;
}

}  // namespace

Result<core::ModelState> RoundController::Run(core::ModelState initial) {
  Impl& m = *impl_;
  core::ModelState global = std::move(initial);
  server::WorkerPoolOptions pool_options;
  pool_options.placement = m.options.fixed_clients ? server::PlacementPolicy::Deployment()
                                                   : server::PlacementPolicy::Simulation();
  pool_options.encode = m.options.encode;
  pool_options.decode = m.options.decode;
  pool_options.worker_timeout = m.options.worker_timeout;
  pool_options.round_timeout = m.options.round_timeout;
  pool_options.is_connected = m.options.is_connected;
  server::WorkerPool pool(m.comm, std::move(pool_options));
  server::LedgerObserver ledger;
  std::unique_ptr<verification::ServerGate> gate;
  server::ServerContext ctx{*m.aggregator, m.options,     m.evaluator, pool,     ledger,
                            nullptr,       m.on_progress, m.on_round,  m.history};
  ctx.model_version = m.options.start_model_version;
  ctx.virtual_now = m.options.start_virtual_seconds;

  Status status = m.CheckOptions();
  if (status.ok()) status = ledger.Open(m.options.ledger_file, m.options.ledger_signing_key);
  if (status.ok() && !m.options.start_strategy_state.empty()) {
    status = m.aggregator->RestoreState(m.options.start_strategy_state)
                 .WithContext("restoring the strategy's state from the checkpoint");
  }
  if (status.ok()) status = CheckCompatible(FeaturesOf(m.options, *m.aggregator));
  if (status.ok() && m.options.verification.enabled) {
    auto started =
        verification::ServerGate::Start(m.options.verification, m.options.start_strategy_state,
                                        m.options.random_seed, m.options.round_timeout, ledger);
    if (started.ok()) {
      gate = std::move(started).value();
      ctx.gate = gate.get();
    } else {
      status = started.status();
    }
  }
  if (status.ok() && m.options.async.enabled) {
    if (m.options.wait_for_clients) {  // the first tasks go out once the clients are there
      status = m.options.wait_for_clients(core::Clock::now() + m.options.round_timeout);
    }
    if (status.ok()) status = server::AsyncRounds(ctx).Run(global);
  } else if (status.ok()) {
    server::PlainFit plain(ctx);
    secure::SecureFit secure(ctx);
    server::TierFit tier(ctx);
    // With a tier, secure aggregation runs in each aggregator's subtree: the server takes
    // partials either way.
    server::FitStage& fit = m.options.aggregators > 0    ? static_cast<server::FitStage&>(tier)
                            : m.options.secure.enabled() ? static_cast<server::FitStage&>(secure)
                                                         : static_cast<server::FitStage&>(plain);
    status = server::SyncRounds(ctx, fit).Run(global);
  }
  pool.Finish();
  if (!status.ok()) return status;
  return global;
}

Result<std::string> StateSha256(const core::ModelState& state) {
  return core::security::CheckpointSha256(state);  // one definition of a model's hash
}

Result<Checkpoint> ReadCheckpoint(const std::string& dir) {
  const std::string path = dir + "/checkpoint.fedml";
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("no checkpoint at " + path);
  core::Bytes frame((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto msg = core::Decode(frame);
  if (!msg.ok() || msg->type != MessageType::kSyncModel) {
    return Status::DataLoss("checkpoint " + path + " is damaged: " +
                            (msg.ok() ? std::string("not a model frame") : msg.status().message()));
  }
  Checkpoint ckpt{msg->round, msg->model_version, std::move(msg->model), std::move(msg->extras)};
  const auto clock = msg->attrs.find("virtual_seconds");
  if (clock != msg->attrs.end()) {
    char* end = nullptr;
    ckpt.virtual_seconds = std::strtod(clock->second.c_str(), &end);
    if (end == clock->second.c_str() || *end != '\0' || !std::isfinite(ckpt.virtual_seconds)) {
      return Status::DataLoss("checkpoint " + path + " is damaged: virtual_seconds is '" +
                              clock->second + "'");
    }
  }
  return ckpt;
}

Status WriteCheckpoint(const std::string& dir, std::int64_t round, std::int64_t model_version,
                       const core::ModelState& global,
                       const std::map<std::string, core::ModelState>& strategy_state,
                       double virtual_seconds) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::NotFound("cannot create checkpoint_dir '" + dir + "': " + ec.message());
  Message ckpt;
  ckpt.type = MessageType::kSyncModel;
  ckpt.round = round;
  ckpt.model_version = model_version;
  ckpt.model = global;
  ckpt.extras = strategy_state;
  if (virtual_seconds != 0.0) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.17g", virtual_seconds);  // reads back exactly
    ckpt.attrs["virtual_seconds"] = text;
  }
  FEDML_ASSIGN_OR_RETURN(core::Bytes frame, core::Encode(ckpt));
  const std::string path = dir + "/checkpoint.fedml";
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(frame.data()),
              static_cast<std::streamsize>(frame.size()));
    out.flush();
    if (!out) return Status::DataLoss("writing checkpoint '" + tmp + "' failed (disk full?)");
  }
  // rename() replaces the old checkpoint atomically: a crash leaves either the old or the new.
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::DataLoss("cannot rename '" + tmp + "' to '" + path + "'");
  }
  return Status::Ok();
}

}  // namespace fedml::api
