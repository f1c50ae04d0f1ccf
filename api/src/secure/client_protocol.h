// Secure aggregation, the client's half (fedml/api/secure_aggregation.h): for each client a
// worker trained in a secure round, its protocol object and ring vector, kept until the round's
// last stage, answering the server's stage requests. The server's half is secure/server_round.h.
//
// Contract: internal to the worker; used on the worker's thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fedml/api/client_trainer.h"
#include "fedml/api/secure_aggregation.h"
#include "fedml/core/message.h"

namespace fedml::api::secure {

class ClientProtocol {
 public:
  ClientProtocol(std::uint64_t random_seed, SecureDropoutOptions dropout);
  ~ClientProtocol();

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
  /// Answers the stage request `msg` into `reply` (already addressed, with its stage attr).
  Answer Handle(const core::Message& msg, core::Message& reply);

 private:
  struct Client;  // a client's protocol object and ring vector, until its round ends
  std::uint64_t random_seed_;
  SecureDropoutOptions dropout_;
  std::map<std::int64_t, std::unique_ptr<Client>> clients_;  // by client id
};

}  // namespace fedml::api::secure
