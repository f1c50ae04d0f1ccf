// `fedml aggregator` (fedml/api/deployment.h): a gRPC server for edge clients below and a gRPC
// client of `fedml server` above. Its subtree rounds are the server's machinery at a smaller
// scale: the same WorkerPool dispatch (deadlines, lost and rejoining clients), the same claim
// check, and FedAvg for the subtree's mean, so what it forwards is what the server would have
// folded from the same updates.
#include <algorithm>
#include <cstdio>
#include <optional>

#include "fedml/algorithms/registry.h"
#include "fedml/api/compatibility.h"
#include "fedml/api/deployment.h"
#include "fedml/api/options.h"
#include "fedml/api/roles.h"
#include "fedml/core/log.h"
#include "fedml/core/security/credentials.h"
#include "fedml/core/text.h"
#include "secure/server_round.h"
#include "server/ledger_observer.h"
#include "server/server_context.h"
#include "server/tier_fit.h"
#include "server/worker_pool.h"

namespace fedml::api {

namespace {

using core::Message;
using core::MessageType;

class SubtreeAggregator {
 public:
  SubtreeAggregator(const Config& config, int id, core::Communicator& upstream,
                    core::Communicator& downstream, ServerOptions claims,
                    server::WorkerPoolOptions pool_options,
                    std::unique_ptr<algorithms::Aggregator> mean)
      : config_(config),
        id_(id),
        upstream_(upstream),
        claims_(std::move(claims)),
        pool_(downstream, std::move(pool_options)),
        mean_(std::move(mean)) {}

  // Serves upstream's tasks until FINISH.
  Status Run() {
    const WorkerOptions worker = WorkerOptionsFrom(config_);
    for (;;) {
      auto env = upstream_.Recv(0, core::DeadlineAfter(worker.idle_timeout));
      if (!env.ok()) {
        pool_.Finish();
        if (env.status().code() != StatusCode::kDeadlineExceeded) return env.status();
        return Status::DeadlineExceeded("aggregator " + std::to_string(id_) +
                                        ": no message from the server for " +
                                        std::to_string(worker.idle_timeout.count() / 1000) + " s");
      }
      auto msg = core::Decode(env->payload, claims_.decode);
      if (!msg.ok()) {
        pool_.Finish();
        return msg.status().WithContext("aggregator " + std::to_string(id_) +
                                        ": malformed frame from the server");
      }
      Status st;
      if (msg->type == MessageType::kTrainTask) st = Train(*msg);
      if (msg->type == MessageType::kEvalTask) st = Evaluate(*msg);
      if (msg->type == MessageType::kFinish) {
        pool_.Finish();  // its clients end their runs too
        return Status::Ok();
      }
      if (!st.ok()) {
        pool_.Finish();
        return st;
      }
    }
  }

 private:
  core::Deadline SubtreeDeadline() const {
    return core::Clock::now() + claims_.round_timeout * 9 / 10;
  }

  Message ReplyTo(const Message& task, MessageType type) const {
    Message reply;
    reply.type = type;
    reply.sender = upstream_.rank();
    reply.receiver = 0;
    reply.round = task.round;
    reply.model_version = task.model_version;
    return reply;
  }

  Status Send(const Message& reply) {
    FEDML_ASSIGN_OR_RETURN(core::Bytes frame, core::Encode(reply, claims_.encode));
    return upstream_.Send(0, std::move(frame));
  }

  // One subtree round: the sampled clients connected here train from the task's model; the
  // answer is their sample-weighted mean, or an empty partial when none of them is here.
  Status Train(Message& task) {
    pool_.RefreshConnected();
    std::vector<std::int64_t> mine;
    for (std::int64_t c : task.client_ids) {
      if (c < 0 || c >= config_.client_num_in_total) {
        Message refusal = ReplyTo(task, MessageType::kInvalid);
        refusal.attrs["error"] = "the task names client " + std::to_string(c) + ", outside [0, " +
                                 std::to_string(config_.client_num_in_total) + ")";
        return Send(refusal);
      }
      if (pool_.alive(static_cast<int>(c) + 1)) mine.push_back(c);
    }
    std::sort(mine.begin(), mine.end());
    mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
    if (claims_.secure.enabled()) return TrainSecure(task, mine);
    const int k = static_cast<int>(mine.size());
    FEDML_RETURN_IF_ERROR(mean_->Begin(task.model, {task.round, task.model_version, k}));
    std::vector<std::int64_t> contributors;
    std::vector<std::string> samples;
    double loss_weighted = 0.0;
    double train_seconds = 0.0;
    std::int64_t total = 0;
    int refused = 0;  // updates of its own tasks refused (metrics.refused counts unasked frames)
    RoundMetrics metrics;
    server::WorkerPool::Batch batch;
    batch.round = task.round;
    batch.model_version = task.model_version;
    batch.n = k;
    batch.reply_type = MessageType::kClientUpdate;
    batch.deadline = SubtreeDeadline();
    batch.owner = [&](int pos) { return static_cast<int>(mine[pos]) + 1; };
    batch.make_task = [&](int pos) {
      Message t;
      t.type = MessageType::kTrainTask;
      t.client_ids = {mine[pos]};
      t.model = task.model;
      t.attrs = task.attrs;  // the server's signed ledger head, if any
      return t;
    };
    batch.describe = [&](int pos) { return "client " + std::to_string(mine[pos]); };
    batch.on_result = [&](int pos, Message&& reply) {
      const std::int64_t client = mine[pos];
      Status st;
      if (reply.type == MessageType::kInvalid) {
        st = Status::InvalidArgument(reply.attrs["error"]);
      } else if (reply.client_ids != std::vector<std::int64_t>{client}) {
        st = Status::InvalidArgument("the update names another client");
      } else {
        st = server::CheckClaim(claims_, client, reply.num_samples);
      }
      const std::int64_t n = reply.num_samples;
      const double loss = reply.metrics.count("train_loss") ? reply.metrics["train_loss"] : 0.0;
      const double secs = reply.metrics.count("train_seconds") ? reply.metrics["train_seconds"] : 0;
      if (st.ok()) {
        st = mean_->Accumulate(server::ServerContext::UpdateFromReply(client, std::move(reply)));
      }
      if (!st.ok()) {
        ++refused;
        FEDML_LOG_WARNING("aggregator %d, round %lld: update of client %lld refused: %s", id_,
                          static_cast<long long>(task.round) + 1, static_cast<long long>(client),
                          st.ToString().c_str());
        return;
      }
      contributors.push_back(client);
      samples.push_back(std::to_string(n));
      total += n;
      loss_weighted += loss * static_cast<double>(n);
      train_seconds += secs;
    };
    FEDML_RETURN_IF_ERROR(pool_.Dispatch(batch, metrics));
    Message partial = ReplyTo(task, MessageType::kClientUpdate);
    // A frame nobody here asked for (an update for a task another aggregator gave, from a
    // client that failed over mid-round) is not its client's misbehaviour: logged, not reported.
    partial.metrics["subtree_refused"] = refused;
    partial.metrics["subtree_dropped"] = metrics.dropped;
    if (!contributors.empty()) {
      auto mean = mean_->Finalize();
      if (!mean.ok()) {
        Message refusal = ReplyTo(task, MessageType::kInvalid);
        refusal.attrs["error"] = "aggregator " + std::to_string(id_) +
                                 " could not form its mean: " + mean.status().ToString();
        return Send(refusal);
      }
      partial.model = std::move(mean).value();
      partial.client_ids = contributors;
      partial.num_samples = total;
      partial.attrs[server::kTierSamplesAttr] = core::Join(samples, ",");
      partial.metrics["train_loss"] = loss_weighted / static_cast<double>(total);
      partial.metrics["train_seconds"] = train_seconds;
    }
    std::printf(
        "aggregator %d, round %lld: %d of %zu sampled clients here, %zu updates, %d "
        "refused, %d dropped, %d unasked\n",
        id_, static_cast<long long>(task.round) + 1, k, task.client_ids.size(), contributors.size(),
        refused, metrics.dropped, metrics.refused);
    std::fflush(stdout);
    return Send(partial);
  }

  // A subtree round under secure aggregation: the server's own secure fit stage over this
  // aggregator's pool, so it learns only its clients' sum; the secure mean goes upstream.
  Status TrainSecure(Message& task, const std::vector<std::int64_t>& mine) {
    RoundMetrics metrics;
    core::ModelState global = task.model;
    server::LedgerObserver no_ledger;
    std::vector<RoundMetrics> history;
    const GlobalEvaluator no_evaluator;
    // The server waits round_timeout_s plus four stage timeouts for this answer: the subtree's
    // training and stages get 0.9 of each, so the answer arrives inside that.
    ServerOptions subtree = claims_;
    subtree.round_timeout = claims_.round_timeout * 9 / 10;
    subtree.secure.stage_timeout = claims_.secure.stage_timeout * 9 / 10;
    server::ServerContext ctx{*mean_,  subtree, no_evaluator, pool_,  no_ledger,
                              nullptr, {},      {},           history};
    ctx.model_version = task.model_version;
    std::vector<std::int64_t> survivors;
    ctx.on_outcome = [&](std::int64_t client, bool accepted) {
      if (accepted) survivors.push_back(client);
    };
    FEDML_RETURN_IF_ERROR(mean_->Begin(global, {task.round, task.model_version, 1}));
    secure::SecureFit fit(ctx);
    if (!mine.empty()) FEDML_RETURN_IF_ERROR(fit.Run(task.round, mine, global, metrics));
    Message partial = ReplyTo(task, MessageType::kClientUpdate);
    partial.attrs[server::kTierSecureAttr] = "1";
    partial.metrics["subtree_refused"] = metrics.refused;
    const bool aggregated = ctx.model_version > task.model_version;  // EndTraining made a model
    if (aggregated && !survivors.empty()) {
      std::sort(survivors.begin(), survivors.end());
      partial.model = std::move(global);
      partial.client_ids = survivors;
      partial.num_samples = static_cast<std::int64_t>(metrics.extra["secagg_samples"]);
      partial.metrics["train_loss"] = metrics.train_loss;
    }
    std::printf(
        "aggregator %d, round %lld: %zu of %zu sampled clients here, secure sum of %zu, "
        "%d refused\n",
        id_, static_cast<long long>(task.round) + 1, mine.size(), task.client_ids.size(),
        partial.client_ids.size(), metrics.refused);
    std::fflush(stdout);
    return Send(partial);
  }

  // An evaluation shard from upstream goes to one connected client; its answer goes back.
  Status Evaluate(Message& task) {
    pool_.RefreshConnected();
    RoundMetrics metrics;
    std::optional<Message> answer;
    server::WorkerPool::Batch batch;
    batch.round = task.round;
    batch.model_version = task.model_version;
    batch.n = 1;
    batch.reply_type = MessageType::kEvalResult;
    batch.deadline = SubtreeDeadline();
    batch.owner = [](int) { return -1; };
    batch.make_task = [&](int) {
      Message t;
      t.type = MessageType::kEvalTask;
      t.model = task.model;
      t.attrs = task.attrs;  // shard and num_shards
      return t;
    };
    batch.describe = [](int) { return std::string("evaluation shard"); };
    batch.on_result = [&](int, Message&& reply) { answer = std::move(reply); };
    FEDML_RETURN_IF_ERROR(pool_.Dispatch(batch, metrics));
    if (!answer || answer->type != MessageType::kEvalResult) {
      Message refusal = ReplyTo(task, MessageType::kInvalid);
      refusal.attrs["error"] = "aggregator " + std::to_string(id_) + ": " +
                               (answer ? answer->attrs["error"]
                                       : std::string("no connected client evaluated the shard"));
      return Send(refusal);
    }
    Message relay = ReplyTo(task, MessageType::kEvalResult);
    relay.num_samples = answer->num_samples;
    relay.metrics = std::move(answer->metrics);
    return Send(relay);
  }

 private:
  const Config& config_;
  const int id_;
  core::Communicator& upstream_;
  const ServerOptions claims_;
  server::WorkerPool pool_;
  std::unique_ptr<algorithms::Aggregator> mean_;  // the subtree's FedAvg
};

}  // namespace

Status RunDeploymentAggregator(const Config& config, const DeploymentAggregatorArgs& args,
                               const SimulationHooks& hooks) {
  if (config.aggregator_num < 1) {
    return Status::InvalidArgument(
        "fedml aggregator needs aggregator_num >= 1 (the number of aggregators the server "
        "expects); it is " +
        std::to_string(config.aggregator_num));
  }
  if (args.aggregator_id < 0 || args.aggregator_id >= config.aggregator_num) {
    return Status::InvalidArgument("aggregator_id " + std::to_string(args.aggregator_id) +
                                   " is outside [0, " + std::to_string(config.aggregator_num) +
                                   ") (aggregator_num)");
  }
  if (args.wait_clients < 0 || args.wait_clients > config.client_num_in_total) {
    return Status::InvalidArgument("--wait_clients " + std::to_string(args.wait_clients) +
                                   " is outside [0, " + std::to_string(config.client_num_in_total) +
                                   "] (client_num_in_total)");
  }
  FEDML_RETURN_IF_ERROR(CheckCompatible(RunFeaturesOf(config)));
  // The server's view of the model and the partitions: the size of an honest update and the cap
  // on a client's sample claim.
  Config probe_config = config;
  probe_config.worker_num = config.client_num_in_total;
  FEDML_ASSIGN_OR_RETURN(ClientTrainerFactory factory, TrainerFactoryFor(probe_config, hooks));
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<ClientTrainer> probe, factory(probe_config.worker_num));
  ServerOptions claims = ServerOptionsFrom(config);
  claims.fixed_clients = true;
  FEDML_RETURN_IF_ERROR(SetClaimChecks(config, *probe, claims));
  if (claims.secure.enabled() && config.secagg_signed_keys && !args.security.insecure &&
      args.security.mutual_tls) {
    // Its clients sign their keys with the certificates this aggregator admits them by.
    FEDML_ASSIGN_OR_RETURN(claims.secure.signing_ca_pem,
                           core::security::ReadTextFile(args.security.certs_dir + "/ca.pem"));
  }
  if (config.max_update_mb == 0) {
    FEDML_ASSIGN_OR_RETURN(core::ModelState initial, probe->GetState());
    claims.decode.max_frame_bytes = UpdateLimitForModel(ModelWireBytes(initial));
  }
  algorithms::AggregatorOptions mean_options;
  mean_options.fold_width = config.aggregation_fold_width > 0 ? config.aggregation_fold_width : 8;
  mean_options.aggregation_threads = config.aggregation_threads;  // 0: every core
  mean_options.client_num_in_total = config.client_num_in_total;
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<algorithms::Aggregator> mean,
                         algorithms::CreateAggregator("FedAvg", mean_options));

  core::grpc_comm::ServerOptions down = GrpcServerOptionsFrom(config);
  down.address = args.address;
  down.num_clients = config.client_num_in_total;
  down.security = args.security;
  down.max_frame_bytes = claims.decode.max_frame_bytes;
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<core::grpc_comm::ServerCommunicator> clients,
                         core::grpc_comm::StartServer(down));
  if (args.on_listening) args.on_listening(clients->bound_port());
  if (args.wait_clients > 0) {
    FEDML_RETURN_IF_ERROR(
        clients->WaitForClients(args.wait_clients, core::Clock::now() + claims.round_timeout)
            .WithContext("aggregator " + std::to_string(args.aggregator_id) + ": waiting for " +
                         std::to_string(args.wait_clients) + " clients (--wait_clients)"));
  }
  core::grpc_comm::ClientOptions up;
  up.server = args.upstream;
  up.client_id = args.aggregator_id;
  up.security = args.upstream_security;
  up.server_name = args.upstream_name;
  up.connect_timeout = claims.round_timeout;
  FEDML_ASSIGN_OR_RETURN(std::unique_ptr<core::Communicator> server,
                         core::grpc_comm::ConnectClient(up));
  std::printf("aggregator %d: registered with %s\n", args.aggregator_id, args.upstream.c_str());
  std::fflush(stdout);

  server::WorkerPoolOptions pool_options;
  pool_options.placement = server::PlacementPolicy::Deployment();
  pool_options.encode = claims.encode;
  pool_options.decode = claims.decode;
  pool_options.round_timeout = claims.round_timeout;
  core::grpc_comm::ServerCommunicator* raw = clients.get();
  pool_options.is_connected = [raw](int rank) { return raw->is_live(rank); };
  SubtreeAggregator node(config, args.aggregator_id, *server, *clients, std::move(claims),
                         std::move(pool_options), std::move(mean));
  return node.Run();
}

}  // namespace fedml::api
