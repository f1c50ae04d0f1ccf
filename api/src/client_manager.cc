#include "fedml/api/client_manager.h"

#include <algorithm>
#include <optional>

#include "fedml/algorithms/secagg.h"
#include "fedml/core/random.h"

namespace fedml::api {

using core::Message;
using core::MessageType;

namespace {
constexpr std::uint64_t kSecureRoundingTag = 0x736563726e64ULL;  // "secrnd"
}  // namespace

struct ClientManager::SecureClient {
  std::int64_t round = -1;
  algorithms::SecAggClient protocol;
  std::vector<std::uint32_t> input;  // the ring vector [w, w (x - g)]
  int last_stage = 3;                // the last stage it answers (a simulated dropout: fewer)
};

std::uint64_t TaskSeed(std::uint64_t run_seed, std::int64_t round, std::int64_t client_id) {
  return core::DeriveSeed(
      run_seed, {static_cast<std::uint64_t>(round), static_cast<std::uint64_t>(client_id)});
}

ClientManager::ClientManager(core::Communicator& comm, std::unique_ptr<ClientTrainer> trainer,
                             WorkerOptions options)
    : comm_(comm), trainer_(std::move(trainer)), options_(std::move(options)) {
  handlers_[MessageType::kSyncModel] = [this](Message& m) { return HandleSync(m); };
  handlers_[MessageType::kTrainTask] = [this](Message& m) { return HandleTrain(m); };
  handlers_[MessageType::kEvalTask] = [this](Message& m) { return HandleEval(m); };
  handlers_[MessageType::kFinish] = [this](Message&) {
    finished_ = true;
    return Status::Ok();
  };
  handlers_[MessageType::kHeartbeat] = [](Message&) { return Status::Ok(); };
  handlers_[MessageType::kProtocol] = [this](Message& m) {
    return m.attrs["stage"] == kVerifyStageReveal ? HandleReveal(m) : HandleSecureStage(m);
  };
}

ClientManager::~ClientManager() = default;

Status ClientManager::Run() {
  while (!finished_) {
    auto env = comm_.Recv(/*source=*/0, core::DeadlineAfter(options_.idle_timeout));
    if (!env.ok()) {
      if (env.status().code() == StatusCode::kDeadlineExceeded) {
        return Status::DeadlineExceeded(
            "worker rank " + std::to_string(comm_.rank()) + ": no message from the server for " +
            std::to_string(options_.idle_timeout.count() / 1000) + " s; giving up");
      }
      return env.status();
    }
    auto decoded = core::Decode(env->payload, options_.decode);
    if (!decoded.ok()) {
      return decoded.status().WithContext("worker rank " + std::to_string(comm_.rank()) +
                                          ": malformed frame from the server");
    }
    Message msg = std::move(decoded).value();
    auto handler = handlers_.find(msg.type);
    if (handler == handlers_.end()) continue;  // not for workers; ignore
    // A trainer is user code: an exception it throws becomes an error status here instead of
    // ending the process from a worker thread.
    Status st;
    try {
      st = handler->second(msg);
    } catch (const std::exception& e) {
      st = Status::Internal(std::string("exception in the trainer: ") + e.what());
    }
    if (!st.ok()) {
      Message err = ReplyTo(msg);
      err.client_ids = msg.client_ids;
      (void)SendReply(err, st);  // best effort: the worker stops either way
      return st;
    }
  }
  return Status::Ok();
}

Message ClientManager::ReplyTo(const Message& request) const {
  Message reply;
  reply.sender = comm_.rank();
  reply.receiver = 0;
  reply.round = request.round;
  reply.model_version = model_version_;
  return reply;
}

Status ClientManager::SendReply(Message& reply, const Status& status) {
  if (!status.ok()) {
    reply.type = MessageType::kError;
    reply.attrs["error"] = status.ToString();
  }
  FEDML_ASSIGN_OR_RETURN(core::Bytes frame, core::Encode(reply, options_.encode));
  return comm_.Send(0, std::move(frame));
}

Status ClientManager::HandleSync(Message& msg) {
  global_ = std::move(msg.model);
  model_version_ = msg.model_version;
  return Status::Ok();
}

Status ClientManager::HandleEval(Message& msg) {
  if (!msg.model.empty()) FEDML_RETURN_IF_ERROR(HandleSync(msg));  // a task that brings its model
  Message reply = ReplyTo(msg);
  EvalTask task;
  task.round = msg.round;
  Status st;
  try {
    task.shard = std::stoi(msg.attrs.at("shard"));
    task.num_shards = std::stoi(msg.attrs.at("num_shards"));
  } catch (const std::exception&) {
    st = Status::InvalidArgument("evaluation task without a valid shard and num_shards");
  }
  if (st.ok() && msg.model_version != model_version_) {
    st =
        Status::FailedPrecondition("evaluation task for model version " +
                                   std::to_string(msg.model_version) + " arrived before its model");
  }
  if (st.ok()) st = trainer_->SetState(global_);
  if (st.ok()) {
    auto eval = trainer_->Evaluate(task);
    if (eval.ok()) {
      reply.type = MessageType::kEvalResult;
      reply.num_samples = eval->num_samples;
      reply.metrics["test_loss"] = eval->loss;
      reply.metrics["test_accuracy"] = eval->accuracy;
    } else {
      st = eval.status();
    }
  }
  return SendReply(reply, st);
}

Status ClientManager::HandleTrain(Message& msg) {
  if (!msg.model.empty()) FEDML_RETURN_IF_ERROR(HandleSync(msg));  // a task that brings its model
  // Protocol state of earlier rounds is dead: those rounds are over at the server.
  for (auto it = secure_.begin(); it != secure_.end();) {
    it = it->second->round < msg.round ? secure_.erase(it) : std::next(it);
  }
  // So are the committed checkpoints of earlier rounds: their spot checks are over.
  trainer_->ReleaseCheckpoints(msg.round);
  std::int64_t checkpoint_interval = 0;
  std::optional<std::uint64_t> assigned_seed;
  if (msg.attrs.count(kVerifyIntervalAttr)) {
    try {
      checkpoint_interval = std::stoll(msg.attrs[kVerifyIntervalAttr]);
      assigned_seed = std::stoull(msg.attrs[kVerifySeedAttr]);
      if (checkpoint_interval < 1) checkpoint_interval = -1;
    } catch (const std::exception&) {
      checkpoint_interval = -1;
    }
  }
  for (std::int64_t client : msg.client_ids) {
    Message reply = ReplyTo(msg);
    reply.client_ids = {client};
    Status st;
    if (msg.model_version != model_version_) {
      st =
          Status::FailedPrecondition("task for model version " + std::to_string(msg.model_version) +
                                     " arrived before its model");
    } else if (checkpoint_interval < 0 || (assigned_seed && msg.client_ids.size() != 1)) {
      st = Status::InvalidArgument(
          "a verified task needs one client, a checkpoint interval >= 1 and a data seed");
    } else {
      st = trainer_->SetState(global_);
    }
    if (st.ok()) {
      TrainTask task;
      task.round = msg.round;
      task.client_id = client;
      task.model_version = model_version_;
      task.seed = TaskSeed(options_.random_seed, msg.round, client);
      task.extras = msg.extras;  // copied: a task may name several clients
      task.checkpoint_interval = checkpoint_interval;
      if (assigned_seed) task.seed = *assigned_seed;
      const auto t0 = core::Clock::now();
      auto update = trainer_->Train(task);
      if (update.ok()) {
        update->metrics["train_seconds"] =
            std::chrono::duration<double>(core::Clock::now() - t0).count();
        reply.type = MessageType::kClientUpdate;
        if (HasSecureTaskAttrs(msg.attrs)) {
          st = StartSecureClient(msg, client, *update, reply);
        } else {
          reply.num_samples = update->num_samples;
          reply.metrics = std::move(update->metrics);
          reply.model = std::move(update->state);
          reply.extras = std::move(update->extras);
          if (checkpoint_interval > 0) {
            reply.blob.assign(update->commitment.begin(), update->commitment.end());
          }
        }
      } else {
        st = update.status();
      }
    }
    FEDML_RETURN_IF_ERROR(SendReply(reply, st));
  }
  return Status::Ok();
}

Status ClientManager::StartSecureClient(const Message& task, std::int64_t client,
                                        LocalUpdate& update, Message& reply) {
  FEDML_ASSIGN_OR_RETURN(SecureTask secure, SecureTaskFromAttrs(task.attrs));
  if (!update.extras.empty()) {
    return Status::FailedPrecondition(
        "secure aggregation carries the model only; this client's update has side payloads (" +
        update.extras.begin()->first + ")");
  }
  FEDML_ASSIGN_OR_RETURN(
      SecureInputVector input,
      SecureInput(update.state, global_, update.num_samples, secure,
                  core::DeriveSeed(options_.random_seed,
                                   {kSecureRoundingTag, static_cast<std::uint64_t>(task.round),
                                    static_cast<std::uint64_t>(client)})));
  auto state = std::make_unique<SecureClient>(SecureClient{
      task.round, algorithms::SecAggClient(secure.index, secure.params, secure.round_id),
      std::move(input.words), 3});
  const std::vector<int> drops = SimulatedDropouts(
      options_.random_seed, task.round, secure.params.num_clients, options_.secure_dropout.rate);
  if (std::binary_search(drops.begin(), drops.end(), secure.index)) {
    const auto& names = SecureDropoutStageNames();
    state->last_stage = static_cast<int>(
        std::find(names.begin(), names.end(), options_.secure_dropout.stage) - names.begin());
  }
  FEDML_ASSIGN_OR_RETURN(algorithms::SecAggKeys keys, state->protocol.AdvertiseKeys());
  const core::Bytes encoded = algorithms::Encode(keys);
  reply.blob.assign(encoded.begin(), encoded.end());
  reply.metrics = std::move(update.metrics);
  if (input.clipped > 0) reply.metrics["secagg_clipped"] = static_cast<double>(input.clipped);
  secure_[client] = std::move(state);
  return Status::Ok();
}

Status ClientManager::HandleReveal(Message& msg) {
  Message reply = ReplyTo(msg);
  reply.type = MessageType::kProtocol;
  reply.client_ids = msg.client_ids;
  reply.attrs["stage"] = kVerifyStageReveal;
  Status st;
  std::int64_t segment = -1;
  try {
    segment = std::stoll(msg.attrs[kVerifySegmentAttr]);
  } catch (const std::exception&) {
    st = Status::InvalidArgument("a reveal request without a valid segment");
  }
  if (st.ok() && msg.client_ids.size() != 1) {
    st = Status::InvalidArgument("a reveal request names one client");
  }
  if (st.ok()) {
    auto start = trainer_->CommittedCheckpoint(msg.round, msg.client_ids[0], segment);
    auto next = start.ok()
                    ? trainer_->CommittedCheckpoint(msg.round, msg.client_ids[0], segment + 1)
                    : start;
    if (next.ok()) {
      reply.model = std::move(start).value();
      reply.extras[kVerifyNextExtra] = std::move(next).value();
    } else {
      st = next.status();
    }
  }
  // A client that cannot reveal fails its check; the worker itself goes on serving.
  if (!st.ok()) reply.attrs["error"] = st.ToString();
  return SendReply(reply, Status::Ok());
}

Status ClientManager::HandleSecureStage(Message& msg) {
  Message reply = ReplyTo(msg);
  reply.type = MessageType::kProtocol;
  reply.client_ids = msg.client_ids;
  const std::string stage = msg.attrs["stage"];
  reply.attrs["stage"] = stage;
  const int index = stage == kSecureStageShareKeys   ? 1
                    : stage == kSecureStageMaskInput ? 2
                    : stage == kSecureStageUnmask    ? 3
                                                     : 0;
  Status st;
  auto it = msg.client_ids.size() == 1 ? secure_.find(msg.client_ids[0]) : secure_.end();
  if (index == 0) {
    st = Status::InvalidArgument("unknown secure aggregation stage '" + stage + "'");
  } else if (it == secure_.end() || it->second->round != msg.round) {
    st = Status::FailedPrecondition(
        "no secure aggregation state on this worker for the client of this " + stage +
        " request (round " + std::to_string(msg.round + 1) + ")");
  } else if (index > it->second->last_stage) {
    secure_.erase(it);  // the client vanishes with its secrets
    if (options_.secure_dropout.silent) return Status::Ok();
    reply.attrs["dropped"] = "1";
    return SendReply(reply, Status::Ok());
  }
  auto answer = [&]() -> Result<core::Bytes> {
    SecureClient& c = *it->second;
    const core::Bytes in(msg.blob.begin(), msg.blob.end());
    if (index == 1) {
      FEDML_ASSIGN_OR_RETURN(algorithms::SecAggKeyList m, algorithms::DecodeSecAggKeyList(in));
      FEDML_ASSIGN_OR_RETURN(algorithms::SecAggEncryptedShares out, c.protocol.ShareKeys(m));
      return algorithms::Encode(out);
    }
    if (index == 2) {
      FEDML_ASSIGN_OR_RETURN(algorithms::SecAggSharesForYou m,
                             algorithms::DecodeSecAggSharesForYou(in));
      FEDML_ASSIGN_OR_RETURN(algorithms::SecAggMaskedInput out,
                             c.protocol.MaskInput(m, c.input.data()));
      return algorithms::Encode(out);
    }
    FEDML_ASSIGN_OR_RETURN(algorithms::SecAggUnmaskRequest m,
                           algorithms::DecodeSecAggUnmaskRequest(in));
    FEDML_ASSIGN_OR_RETURN(algorithms::SecAggUnmaskReply out, c.protocol.Unmask(m));
    return algorithms::Encode(out);
  };
  if (st.ok()) {
    auto out = answer();
    if (out.ok()) {
      reply.blob.assign(out->begin(), out->end());
    } else {
      st = out.status();
    }
    // A client that answered the last stage, or failed one, has nothing left to do.
    if (index == 3 || !st.ok()) secure_.erase(it);
  }
  return SendReply(reply, st);
}

}  // namespace fedml::api
