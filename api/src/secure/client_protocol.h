// Secure aggregation, the client's half (fedml/api/secure_aggregation.h): for each client a
// worker trained in a secure round, its protocol object and ring vector, kept until the round's
// last stage, answering the server's stage requests. The server's half is secure/server_round.h.
//
// Contract: internal to the worker; used on the worker's thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "fedml/algorithms/protocols/secagg_auth.h"
#include "fedml/api/client_trainer.h"
#include "fedml/api/secure_aggregation.h"
#include "fedml/core/message.h"

namespace fedml::api::secure {

class ClientProtocol {
 public:
  /// journal: the file where this worker records each (seed, client, round) it took part in, so
  /// that the guard of Admit holds across its restarts; "" keeps the record in memory only.
  /// limits: the weakest round parameters a task may carry (Accept).
  /// identity: the worker's mutual-TLS credentials; when enabled every round must be signed
  /// (fedml/algorithms/protocols/secagg_auth.h), and unsigned ones are refused in Accept.
  ClientProtocol(std::uint64_t random_seed, SecureDropoutOptions dropout, std::string journal,
                 SecureClientLimits limits = {}, const SecureIdentity& identity = {});
  ~ClientProtocol();

  /// Whether client `client` may take part in secure round `round`, and if so records that it
  /// did (appended to the journal and flushed to disk before this returns). A client takes part
  /// in each round of its federation (its own random_seed) at most once: its masked input of a
  /// round is the same each time, so a server that ran one round twice over different survivor
  /// sets could subtract the two sums and learn this client's update. FAILED_PRECONDITION for a
  /// second time; DATA_LOSS when the journal cannot be read or written (the client does not take
  /// part rather than risk it).
  Status Admit(std::int64_t round, std::int64_t client);

  /// Whether the secure task `task` is one to take part in: its parameters parse and meet the
  /// limits (CheckSecureTaskLimits: PERMISSION_DENIED), and it is signed exactly when this worker
  /// has an identity (PERMISSION_DENIED otherwise; the identity's own error when its PEMs do not
  /// parse). Called before training and Admit.
  Status Accept(const core::Message& task) const;

  /// The protocol stages (kProtocol attr "stage") this half answers, in order.
  static const std::vector<std::string>& Stages();
  /// Protocol state of rounds before `round` is dead: those rounds are over at the server.
  void ForgetBefore(std::int64_t round);
  /// Turns client `client`'s trained update for `task` (trained from `global`) into its stage-0
  /// reply: its public keys instead of the model, which stays here as the masked input's source.
  Status Start(const core::Message& task, std::int64_t client, const core::ModelState& global,
               LocalUpdate& update, core::Message& reply);

  /// How a stage request is answered.
  struct Answer {
    bool send = true;  // false: a silent simulated dropout says nothing at all
    Status status;     // not OK: the reply goes as an ERROR
  };
  /// Answers the stage request `msg` into `reply` (already addressed, with its stage attr). In a
  /// signed round a request that fails its checks (a peer's key credential, the consistency of
  /// the survivors) is answered with an ERROR naming why, and the client's state for the round
  /// is dropped: nothing more leaves it for that round.
  Answer Handle(const core::Message& msg, core::Message& reply);

 private:
  struct Client;  // a client's protocol object and ring vector, until its round ends
  Status LoadJournal();
  /// The answer to stage `index` (1-based in Stages()) of client `c`'s round.
  Result<core::Bytes> Respond(Client& c, int index, const core::Bytes& request);

  std::uint64_t random_seed_;
  SecureDropoutOptions dropout_;
  std::string journal_;
  SecureClientLimits limits_;
  // The parsed identity, or why it does not parse (refused at Accept); absent without one.
  std::unique_ptr<algorithms::SecAggIdentity> identity_;
  Status identity_status_;
  bool journal_loaded_ = false;
  std::set<std::pair<std::int64_t, std::int64_t>> taken_part_;  // (client, round)
  std::map<std::int64_t, std::unique_ptr<Client>> clients_;     // by client id
};

}  // namespace fedml::api::secure
