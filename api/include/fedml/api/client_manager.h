// The worker side: one handler per message type (FedML's pattern) over a communicator. A worker
// hosts many clients: in simulation it trains whichever clients the server hands it; in
// deployment it is one edge client. Protocol features (secure aggregation, verified work) plug
// their client halves in by the protocol stages they answer.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>

#include "fedml/api/client_trainer.h"
#include "fedml/api/secure_aggregation.h"
#include "fedml/api/verification.h"
#include "fedml/core/comm/communicator.h"
#include "fedml/core/wire.h"

namespace fedml::api {

namespace secure {
class ClientProtocol;
}

struct WorkerOptions {
  std::uint64_t random_seed = 0;
  /// The longest the worker waits for the server's next message before giving up.
  std::chrono::milliseconds idle_timeout{1200000};
  core::EncodeOptions encode;
  core::DecodeLimits decode;
  /// Simulated secure-aggregation dropouts of the clients this worker trains.
  SecureDropoutOptions secure_dropout;
  /// Where the worker records the secure rounds its clients took part in, so that none takes
  /// part in one round twice across the worker's restarts (a server that re-runs a round could
  /// otherwise learn one client's update); "" keeps the record in memory (this process only).
  std::string secure_journal;
  /// Where the worker keeps the server's signed ledger heads its tasks carry (kLedgerHeadAttr),
  /// each appended once: the client's evidence of what the server recorded, for
  /// `fedml ledger verify --heads`. "" keeps none.
  std::string ledger_heads_file;
  /// The weakest secure-round parameters (n, t, k) the worker's clients accept from a task.
  SecureClientLimits secure_limits;
  /// A deployed client's mutual-TLS credentials: with them its secure rounds are signed (keys
  /// and the consistency round) and unsigned ones refused; without them (simulation, MPI)
  /// rounds run unsigned.
  SecureIdentity secure_identity;
};

/// Runs on a worker rank (1..world_size-1): receives the global model, trains each client it is
/// handed through its trainer, sends the updates back. With secure aggregation
/// (fedml/api/secure_aggregation.h) it keeps each trained client's masked-input state until the
/// round's last stage, answers the stages for it, and sends no model in the clear. With verified
/// work (fedml/api/verification.h) each update carries its commitment and the trainer keeps the
/// checkpoints until the next round's first task, answering reveal requests meanwhile. `comm`
/// must outlive it. Run() on one thread.
class ClientManager {
 public:
  ClientManager(core::Communicator& comm, std::unique_ptr<ClientTrainer> trainer,
                WorkerOptions options);
  ~ClientManager();

  /// Serves until FINISH (OK), an abort (ABORTED), or idle_timeout with no message from the
  /// server (DEADLINE_EXCEEDED). A training failure is reported to the server as an ERROR
  /// message and the worker keeps serving.
  Status Run();

 private:
  using Handler = std::function<Status(core::Message&)>;
  Status HandleSync(core::Message& msg);
  /// Keeps the ledger head a task carries (ledger_heads_file), once per record.
  void KeepLedgerHead(const core::Message& task);
  Status HandleTrain(core::Message& msg);
  Status HandleEval(core::Message& msg);
  /// A kProtocol message: routed by its "stage" attr to the feature that registered the stage
  /// (secure aggregation's stages, verified work's reveal).
  Status HandleProtocol(core::Message& msg);
  /// Trains one client of a task into `reply`.
  Status TrainClient(const core::Message& msg, std::int64_t client, core::Message& reply);
  /// A reply to `request` addressed to the server, carrying this worker's model version.
  core::Message ReplyTo(const core::Message& request) const;
  /// Sends `reply`, turned into an ERROR carrying `status` when that is not OK.
  Status SendReply(core::Message& reply, const Status& status);

  core::Communicator& comm_;
  std::unique_ptr<ClientTrainer> trainer_;
  WorkerOptions options_;
  std::map<core::MessageType, Handler> handlers_;
  std::map<std::string, Handler> stage_handlers_;  // kProtocol, by its "stage" attr
  core::ModelState global_;
  std::int64_t model_version_ = -1;
  bool finished_ = false;
  std::unique_ptr<secure::ClientProtocol> secure_;  // secure aggregation's client half
  std::int64_t last_kept_head_ = -1;                // seq of the last ledger head kept
};

}  // namespace fedml::api
