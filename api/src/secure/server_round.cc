#include "secure/server_round.h"

#include <algorithm>

#include "fedml/algorithms/protocols/secagg.h"
#include "fedml/algorithms/protocols/secagg_auth.h"
#include "fedml/core/log.h"
#include "fedml/core/security/crypto.h"
#include "fedml/core/security/signatures.h"

namespace fedml::api::secure {

using core::Message;
using core::MessageType;

namespace {

template <class T>
core::Bytes ToBytes(const T& message) {
  return algorithms::Encode(message);
}

}  // namespace

Status SecureFit::Exchange(std::int64_t round, const char* stage,
                           const std::vector<std::int64_t>& sampled,
                           const std::vector<int>& rank_of, std::map<int, core::Bytes>& out,
                           std::map<int, core::Bytes>& in, RoundMetrics& metrics) {
  const core::Deadline deadline = core::Clock::now() + ctx_.options.secure.stage_timeout;
  server::WorkerPool& pool = ctx_.pool;
  std::map<int, int> waiting;  // participant -> the rank that holds it
  auto lost = [&](int index, const std::string& why) {
    ++metrics.dropped;
    FEDML_LOG_WARNING("round %lld: client %lld dropped at secure aggregation stage %s: %s",
                      static_cast<long long>(round) + 1, static_cast<long long>(sampled[index]),
                      stage, why.c_str());
  };
  for (auto& [index, bytes] : out) {
    const int rank = rank_of[index];
    if (rank < 1 || !pool.alive(rank)) {
      lost(index, "its rank is gone");
      continue;
    }
    Message m;
    m.type = MessageType::kProtocol;
    m.sender = 0;
    m.receiver = rank;
    m.round = round;
    m.model_version = ctx_.model_version;
    m.client_ids = {sampled[index]};
    m.attrs["stage"] = stage;
    m.blob.assign(bytes.begin(), bytes.end());
    core::Bytes().swap(bytes);  // one copy in flight at a time
    Status st = pool.Send(rank, m, &metrics.bytes_down);
    if (st.ok()) {
      waiting[index] = rank;
    } else if (st.code() == StatusCode::kUnavailable) {
      lost(index, "rank " + std::to_string(rank) + " is not reachable");
    } else {
      return st;
    }
  }
  while (!waiting.empty()) {
    auto inbound = pool.Receive(deadline, &metrics.bytes_up);
    if (!inbound.ok()) {
      if (inbound.status().code() != StatusCode::kDeadlineExceeded) return inbound.status();
      char why[96];
      std::snprintf(why, sizeof(why), "no answer within secagg_stage_timeout_s=%.3g",
                    static_cast<double>(ctx_.options.secure.stage_timeout.count()) / 1000.0);
      for (const auto& [index, rank] : waiting) lost(index, why);
      break;
    }
    const int src = inbound->source;
    if (!inbound->decoded) {
      ++metrics.refused;
      FEDML_LOG_WARNING("refused a frame from rank %d: %s", src,
                        inbound->decode_error.ToString().c_str());
      continue;
    }
    Message msg = std::move(inbound->msg);
    if (msg.type == MessageType::kFinish) {  // the rank left: its clients are gone
      pool.MarkLost(src);
      for (auto it = waiting.begin(); it != waiting.end();) {
        if (it->second != src) {
          ++it;
          continue;
        }
        lost(it->first, "rank " + std::to_string(src) + " left");
        it = waiting.erase(it);
      }
      continue;
    }
    // An answer counts only from the rank that holds the client, for this round and stage.
    auto it = waiting.end();
    if (msg.client_ids.size() == 1) {
      const auto pos = std::lower_bound(sampled.begin(), sampled.end(), msg.client_ids[0]);
      if (pos != sampled.end() && *pos == msg.client_ids[0]) {
        it = waiting.find(static_cast<int>(pos - sampled.begin()));
      }
    }
    const bool ours = it != waiting.end() && it->second == src && msg.round == round &&
                      msg.attrs["stage"] == stage;
    if (!ours || (msg.type != MessageType::kProtocol && msg.type != MessageType::kError)) {
      ++metrics.refused;  // late, for another stage or client, or nobody asked for it
      continue;
    }
    const int index = it->first;
    waiting.erase(it);
    if (msg.type == MessageType::kError) {
      lost(index, "it failed: " + msg.attrs["error"]);
    } else if (msg.attrs.count("dropped")) {
      lost(index, "it vanished (simulated dropout)");
    } else {
      in[index].assign(msg.blob.begin(), msg.blob.end());
    }
  }
  return Status::Ok();
}

// One secure round's state across its stages.
struct SecureFit::Round {
  std::int64_t round = 0;
  const std::vector<std::int64_t>& sampled;
  SecureTask task;
  algorithms::SecAggServer server;
  std::vector<int> rank_of;                  // by participant: the rank that trained it
  std::map<int, std::string> masked_sha256;  // what the server saw of each survivor
  std::map<int, std::string> refused;        // participants whose protocol message was refused
  std::unique_ptr<algorithms::SecAggServerAuth> auth;  // signed rounds only
};

void SecureFit::ReportBlame(const Round& r, RoundMetrics& metrics) const {
  // A refused message (the sender is authenticated by its rank) and what the server object
  // caught are the same thing: the participant broke the protocol. Its honest neighbours are
  // never named for it.
  std::map<int, std::string> blamed = r.refused;
  for (const auto& [index, why] : r.server.blamed()) {
    std::string& entry = blamed[index];
    entry += entry.empty() ? why : "; " + why;
  }
  if (blamed.empty()) return;
  metrics.extra["secagg_blamed"] = static_cast<double>(blamed.size());
  for (const auto& [index, why] : blamed) {
    const std::int64_t client = r.sampled[static_cast<std::size_t>(index)];
    metrics.extra["secagg_blamed_client_" + std::to_string(client)] = 1.0;
    FEDML_LOG_WARNING("round %lld: client %lld broke the secure aggregation protocol: %s",
                      static_cast<long long>(r.round) + 1, static_cast<long long>(client),
                      why.c_str());
  }
}

Status SecureFit::AddKeys(Round& r, int pos, const core::Bytes& blob) {
  algorithms::SecAggKeys keys;
  if (r.auth) {
    FEDML_ASSIGN_OR_RETURN(algorithms::SecAggSignedKeys signed_keys,
                           algorithms::DecodeSecAggSignedKeys(blob));
    keys = signed_keys.keys;
    if (keys.id == pos) {
      FEDML_RETURN_IF_ERROR(r.auth->AddKeys(signed_keys, r.sampled[static_cast<std::size_t>(pos)]));
    }
  } else {
    FEDML_ASSIGN_OR_RETURN(keys, algorithms::DecodeSecAggKeys(blob));
  }
  if (keys.id != pos) {
    return Status::InvalidArgument("the keys name participant " + std::to_string(keys.id) +
                                   ", not " + std::to_string(pos));
  }
  return r.server.AddKeys(keys);
}

Status SecureFit::Consistency(Round& r, std::map<int, algorithms::SecAggUnmaskRequest>& requests,
                              RoundMetrics& metrics) {
  r.auth->BeginConsistency(r.server.survivors());
  std::map<int, core::Bytes> out;
  std::map<int, core::Bytes> in;
  for (const auto& entry : requests) {
    out[entry.first] = algorithms::Encode(r.auth->ConsistencyRequest(entry.first));
  }
  FEDML_RETURN_IF_ERROR(
      Exchange(r.round, kSecureStageConsistency, r.sampled, r.rank_of, out, in, metrics));
  for (auto& [index, bytes] : in) {
    auto m = algorithms::DecodeSecAggSurvivorSignature(bytes);
    Status st = m.ok() && m->id != index ? Status::InvalidArgument("another client's signature")
                                         : m.status();
    if (st.ok()) st = r.auth->AddSignature(*m);
    if (!st.ok()) {
      ctx_.Refuse(r.round, r.sampled[static_cast<std::size_t>(index)], "survivor signature", st,
                  metrics);
      r.refused[index] = st.message();
    }
  }
  // Only the signers are asked to unmask: the others are dropouts of this stage.
  const std::vector<int> signers = r.auth->signers();
  for (auto it = requests.begin(); it != requests.end();) {
    it = std::binary_search(signers.begin(), signers.end(), it->first) ? std::next(it)
                                                                       : requests.erase(it);
  }
  return Status::Ok();
}

Status SecureFit::CollectKeys(Round& r, const core::ModelState& global, RoundMetrics& metrics) {
  const int n = static_cast<int>(r.sampled.size());
  double loss_sum = 0.0;
  int loss_count = 0;
  server::WorkerPool::Batch batch;
  batch.round = r.round;
  batch.model_version = ctx_.model_version;
  batch.n = n;
  batch.reply_type = MessageType::kClientUpdate;
  batch.deadline = core::Clock::now() + ctx_.options.round_timeout;
  // Over-selection: the participants are the first client_num_per_round to answer with their
  // keys; the others are cut before the protocol knows them, as clients that never advertised
  // keys (their late keys are ignored).
  ctx_.OverSelect(batch, n, metrics);
  batch.owner = [&](int pos) { return ctx_.pool.placement().OwnerOf(r.sampled[pos]); };
  batch.make_task = [&](int pos) {
    Message m;
    m.type = MessageType::kTrainTask;
    m.client_ids = {r.sampled[pos]};
    SecureTask mine = r.task;
    mine.index = pos;
    PutSecureTaskAttrs(mine, m.attrs);
    if (ctx_.pool.placement().model_in_task()) m.model = global;
    ctx_.TagTask(m);
    return m;
  };
  batch.describe = [&](int pos) { return "client " + std::to_string(r.sampled[pos]); };
  batch.on_result = [&](int pos, Message&& msg) {
    Status st;
    if (msg.type == MessageType::kInvalid) {
      st = Status::InvalidArgument(msg.attrs["error"]);
    } else if (msg.client_ids != std::vector<std::int64_t>{r.sampled[pos]}) {
      st = Status::InvalidArgument("the reply names another client");
    } else if (!msg.model.empty()) {
      st = Status::InvalidArgument("a model in the clear where secure aggregation was asked");
    } else {
      st = AddKeys(r, pos, core::Bytes(msg.blob.begin(), msg.blob.end()));
    }
    if (st.ok()) {
      r.rank_of[static_cast<std::size_t>(pos)] = msg.sender;
      const auto secs = msg.metrics.find("train_seconds");
      if (secs != msg.metrics.end()) metrics.extra["client_train_seconds"] += secs->second;
      const auto loss = msg.metrics.find("train_loss");
      if (loss != msg.metrics.end()) {
        loss_sum += loss->second;
        ++loss_count;
      }
    } else {
      ctx_.Refuse(r.round, r.sampled[pos], "keys", st, metrics);
    }
    if (ctx_.on_progress) ctx_.on_progress(r.round + 1, pos + 1, n);
  };
  FEDML_RETURN_IF_ERROR(ctx_.pool.Dispatch(batch, metrics));
  metrics.train_loss = loss_count > 0 ? loss_sum / loss_count : 0.0;
  return Status::Ok();
}

Status SecureFit::RunStages(Round& r, RoundMetrics& metrics, Status& abort,
                            std::vector<std::uint32_t>& sum) {
  const std::int64_t round = r.round;
  const std::vector<std::int64_t>& sampled = r.sampled;
  const std::vector<int>& rank_of = r.rank_of;
  algorithms::SecAggServer& server = r.server;
  // The server object's End calls say when too few are left (an abort).
  auto stop = [&](const Status& why) {
    abort = why;
    return Status::Ok();
  };
  auto key_lists = server.EndAdvertise();
  if (!key_lists.ok()) return stop(key_lists.status());
  std::map<int, core::Bytes> out;
  std::map<int, core::Bytes> in;
  for (auto& [index, list] : *key_lists) {
    out[index] = r.auth ? ToBytes(r.auth->SignedList(std::move(list))) : ToBytes(list);
  }
  FEDML_RETURN_IF_ERROR(Exchange(round, kSecureStageShareKeys, sampled, rank_of, out, in, metrics));
  auto refuse = [&](int index, const Status& st) {
    ctx_.Refuse(round, sampled[static_cast<std::size_t>(index)], "secure aggregation message", st,
                metrics);
    r.refused[index] = st.message();
  };
  for (auto& [index, bytes] : in) {
    auto m = algorithms::DecodeSecAggEncryptedShares(bytes);
    Status st =
        m.ok() && m->id != index ? Status::InvalidArgument("shares of another client") : m.status();
    if (st.ok()) st = server.AddShares(*m);
    if (!st.ok()) refuse(index, st);
  }
  auto for_you = server.EndSharing();
  if (!for_you.ok()) return stop(for_you.status());
  out.clear();
  in.clear();
  for (const auto& [index, shares] : *for_you) out[index] = ToBytes(shares);
  for_you->clear();
  FEDML_RETURN_IF_ERROR(Exchange(round, kSecureStageMaskInput, sampled, rank_of, out, in, metrics));
  for (auto& [index, bytes] : in) {
    auto m = algorithms::DecodeSecAggMaskedInput(bytes);
    Status st = m.ok() && m->id != index ? Status::InvalidArgument("the input of another client")
                                         : m.status();
    if (st.ok()) st = server.AddMaskedInput(std::move(m).value());
    if (!st.ok()) {
      refuse(index, st);
      continue;
    }
    if (ctx_.ledger.enabled()) {
      auto sha = core::security::Sha256Hex(bytes.data(), bytes.size());
      r.masked_sha256[index] = sha.ok() ? *sha : "";
    }
    core::Bytes().swap(bytes);
  }
  auto requests = server.EndMasking();
  if (!requests.ok()) return stop(requests.status());
  if (r.auth) FEDML_RETURN_IF_ERROR(Consistency(r, *requests, metrics));
  out.clear();
  in.clear();
  for (auto& [index, request] : *requests) {
    out[index] = r.auth ? ToBytes(r.auth->SignedRequest(std::move(request))) : ToBytes(request);
  }
  FEDML_RETURN_IF_ERROR(Exchange(round, kSecureStageUnmask, sampled, rank_of, out, in, metrics));
  for (auto& [index, bytes] : in) {
    auto m = algorithms::DecodeSecAggUnmaskReply(bytes);
    Status st = m.ok() && m->id != index ? Status::InvalidArgument("the shares of another client")
                                         : m.status();
    if (st.ok()) st = server.AddUnmaskReply(*m);
    if (!st.ok()) refuse(index, st);
  }
  auto finished = server.Finish();
  if (!finished.ok()) return stop(finished.status());
  sum = std::move(finished).value();
  return Status::Ok();
}

Status SecureFit::Run(std::int64_t round, const std::vector<std::int64_t>& sampled,
                      core::ModelState& global, RoundMetrics& metrics) {
  const auto t_start = core::Clock::now();
  const int n = static_cast<int>(sampled.size());
  // An abort costs the round its update, never the run: the global model stays as it was.
  auto exclude_all_but = [&](const std::vector<int>& survivors) {
    for (int i = 0; i < n; ++i) {
      if (!std::binary_search(survivors.begin(), survivors.end(), i)) {
        ctx_.RecordOutcome(sampled[static_cast<std::size_t>(i)], 0, "", false);
      }
    }
  };
  auto aborted = [&](const Status& why) {
    exclude_all_but({});
    metrics.extra["secagg_aborted"] = 1.0;
    FEDML_LOG_WARNING("round %lld: secure aggregation aborted, the global model is kept: %s",
                      static_cast<long long>(round) + 1, why.message().c_str());
    metrics.extra["train_phase_seconds"] =
        std::chrono::duration<double>(core::Clock::now() - t_start).count();
    return Status::Ok();
  };
  auto task_or =
      SecureTaskForRound(ctx_.options.secure, n, global.numel(), ctx_.options.random_seed, round);
  if (!task_or.ok()) {
    if (task_or.status().code() != StatusCode::kFailedPrecondition) return task_or.status();
    return aborted(task_or.status());
  }
  // Unmasking runs on every core: the workers wait for the round's end meanwhile.
  Round r{round,
          sampled,
          *task_or,
          algorithms::SecAggServer(task_or->params, task_or->round_id, /*threads=*/0),
          std::vector<int>(static_cast<std::size_t>(n), -1),
          {},
          {},
          nullptr};
  if (r.task.signed_round) {
    auto ca = core::security::CertificateAuthority::FromPem(ctx_.options.secure.signing_ca_pem);
    if (!ca.ok()) return ca.status().WithContext("secagg signing CA");
    r.auth = std::make_unique<algorithms::SecAggServerAuth>(r.task.params, r.task.round_id,
                                                            std::move(ca).value());
  }
  // Stage 0 rides on training: each client answers its task with its public keys.
  FEDML_RETURN_IF_ERROR(CollectKeys(r, global, metrics));
  Status abort;
  std::vector<std::uint32_t> sum;
  FEDML_RETURN_IF_ERROR(RunStages(r, metrics, abort, sum));
  ReportBlame(r, metrics);
  if (!abort.ok()) return aborted(abort);

  const std::vector<int>& survivors = r.server.survivors();
  const int summands = static_cast<int>(survivors.size());
  metrics.extra["secagg_survivors"] = summands;
  for (int index : survivors) {
    ctx_.RecordOutcome(sampled[static_cast<std::size_t>(index)], 0, r.masked_sha256[index], true);
  }
  exclude_all_but(survivors);
  if (summands < std::max(1, ctx_.options.min_clients)) {
    return ctx_.EndTraining(round, summands, global, metrics, t_start);
  }
  auto mean = SecureMeanFromSum(sum, summands, global, r.task);
  if (!mean.ok()) return aborted(mean.status());
  if (mean->clipped_fraction > 0.0) {
    metrics.extra["secagg_clipped_fraction"] = mean->clipped_fraction;
  }
  algorithms::ClientUpdate update;
  update.client_id = -1;  // the survivors together
  update.round = round;
  update.base_version = ctx_.model_version;
  update.num_samples = mean->samples;
  metrics.extra["secagg_samples"] = static_cast<double>(mean->samples);
  update.state = std::move(mean->model);
  Status st = ctx_.aggregator.Accumulate(std::move(update));
  if (!st.ok()) return aborted(st);
  metrics.clients = summands;
  return ctx_.EndTraining(round, summands, global, metrics, t_start);
}

}  // namespace fedml::api::secure
