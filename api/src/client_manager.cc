#include "fedml/api/client_manager.h"

#include <algorithm>
#include <fstream>
#include <optional>

#include "fedml/api/round_controller.h"
#include "fedml/core/log.h"
#include "fedml/core/random.h"
#include "fedml/core/security/ledger_heads.h"
#include "secure/client_protocol.h"
#include "verification/client_reveal.h"

namespace fedml::api {

using core::Message;
using core::MessageType;

std::uint64_t TaskSeed(std::uint64_t run_seed, std::int64_t round, std::int64_t client_id) {
  return core::DeriveSeed(
      run_seed, {static_cast<std::uint64_t>(round), static_cast<std::uint64_t>(client_id)});
}

ClientManager::ClientManager(core::Communicator& comm, std::unique_ptr<ClientTrainer> trainer,
                             WorkerOptions options)
    : comm_(comm),
      trainer_(std::move(trainer)),
      options_(std::move(options)),
      secure_(std::make_unique<secure::ClientProtocol>(
          options_.random_seed, options_.secure_dropout, options_.secure_journal,
          options_.secure_limits, options_.secure_identity)) {
  handlers_[MessageType::kSyncModel] = [this](Message& m) { return HandleSync(m); };
  handlers_[MessageType::kTrainTask] = [this](Message& m) { return HandleTrain(m); };
  handlers_[MessageType::kEvalTask] = [this](Message& m) { return HandleEval(m); };
  handlers_[MessageType::kFinish] = [this](Message&) {
    finished_ = true;
    return Status::Ok();
  };
  handlers_[MessageType::kHeartbeat] = [](Message&) { return Status::Ok(); };
  handlers_[MessageType::kProtocol] = [this](Message& m) { return HandleProtocol(m); };
  // The features' client halves, by the stages they answer.
  for (const std::string& stage : secure::ClientProtocol::Stages()) {
    stage_handlers_[stage] = [this](Message& m) {
      Message reply = ReplyTo(m);
      reply.type = MessageType::kProtocol;
      reply.client_ids = m.client_ids;
      reply.attrs["stage"] = m.attrs["stage"];
      const secure::ClientProtocol::Answer answer = secure_->Handle(m, reply);
      return answer.send ? SendReply(reply, answer.status) : Status::Ok();
    };
  }
  stage_handlers_[kVerifyStageReveal] = [this](Message& m) {
    Message reply = ReplyTo(m);
    reply.type = MessageType::kProtocol;
    reply.client_ids = m.client_ids;
    reply.attrs["stage"] = kVerifyStageReveal;
    verification::AnswerReveal(*trainer_, m, reply);
    return SendReply(reply, Status::Ok());
  };
}

Status ClientManager::HandleProtocol(Message& msg) {
  const std::string stage = msg.attrs["stage"];
  auto handler = stage_handlers_.find(stage);
  if (handler != stage_handlers_.end()) return handler->second(msg);
  Message reply = ReplyTo(msg);
  reply.type = MessageType::kProtocol;
  reply.client_ids = msg.client_ids;
  reply.attrs["stage"] = stage;
  return SendReply(reply, Status::InvalidArgument("unknown protocol stage '" + stage + "'"));
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

void ClientManager::KeepLedgerHead(const Message& task) {
  const auto it = task.attrs.find(kLedgerHeadAttr);
  if (options_.ledger_heads_file.empty() || it == task.attrs.end()) return;
  auto head = core::security::ParseLedgerHeadLine(it->second);
  if (!head.ok()) {
    FEDML_LOG_WARNING("the server sent a malformed ledger head, not kept: %s",
                      head.status().ToString().c_str());
    return;
  }
  if (head->seq <= last_kept_head_) return;  // a task of the same round: kept already
  // Kept even if unsigned by the server's key: `fedml ledger verify --heads` checks every
  // signature, and a head the server did not sign proves nothing either way.
  std::ofstream out(options_.ledger_heads_file, std::ios::app);
  out << core::security::LedgerHeadLine(*head) << '\n';
  out.flush();
  if (!out) {
    FEDML_LOG_WARNING("cannot append the ledger head of record %lld to %s",
                      static_cast<long long>(head->seq), options_.ledger_heads_file.c_str());
    return;
  }
  last_kept_head_ = head->seq;
}

Status ClientManager::HandleTrain(Message& msg) {
  if (!msg.model.empty()) FEDML_RETURN_IF_ERROR(HandleSync(msg));  // a task that brings its model
  KeepLedgerHead(msg);
  // Protocol state of earlier rounds is dead: those rounds are over at the server.
  secure_->ForgetBefore(msg.round);
  // So are the committed checkpoints of earlier rounds: their spot checks are over.
  trainer_->ReleaseCheckpoints(msg.round);
  for (std::int64_t client : msg.client_ids) {
    Message reply = ReplyTo(msg);
    reply.client_ids = {client};
    const Status st = TrainClient(msg, client, reply);
    FEDML_RETURN_IF_ERROR(SendReply(reply, st));
  }
  return Status::Ok();
}

Status ClientManager::TrainClient(const Message& msg, std::int64_t client, Message& reply) {
  const verification::VerifiedTask verified = verification::ParseTaskAttrs(msg.attrs);
  if (msg.model_version != model_version_) {
    return Status::FailedPrecondition("task for model version " +
                                      std::to_string(msg.model_version) +
                                      " arrived before its model");
  }
  if (verified.checkpoint_interval < 0 || (verified.data_seed && msg.client_ids.size() != 1)) {
    return Status::InvalidArgument(
        "a verified task needs one client, a checkpoint interval >= 1 and a data seed");
  }
  if (HasSecureTaskAttrs(msg.attrs)) {
    FEDML_RETURN_IF_ERROR(secure_->Accept(msg));
    FEDML_RETURN_IF_ERROR(secure_->Admit(msg.round, client));
  }
  FEDML_RETURN_IF_ERROR(trainer_->SetState(global_));
  TrainTask task;
  task.round = msg.round;
  task.client_id = client;
  task.model_version = model_version_;
  task.seed = TaskSeed(options_.random_seed, msg.round, client);
  task.extras = msg.extras;  // copied: a task may name several clients
  task.checkpoint_interval = verified.checkpoint_interval;
  if (verified.data_seed) task.seed = *verified.data_seed;
  const auto t0 = core::Clock::now();
  FEDML_ASSIGN_OR_RETURN(LocalUpdate update, trainer_->Train(task));
  update.metrics["train_seconds"] = std::chrono::duration<double>(core::Clock::now() - t0).count();
  reply.type = MessageType::kClientUpdate;
  if (HasSecureTaskAttrs(msg.attrs)) return secure_->Start(msg, client, global_, update, reply);
  reply.num_samples = update.num_samples;
  reply.metrics = std::move(update.metrics);
  reply.model = std::move(update.state);
  reply.extras = std::move(update.extras);
  if (verified.checkpoint_interval > 0) {
    reply.blob.assign(update.commitment.begin(), update.commitment.end());
  }
  return Status::Ok();
}

}  // namespace fedml::api
