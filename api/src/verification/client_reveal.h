// Verified work, the client's half (fedml/api/verification.h): what a training task asks for
// (a checkpoint interval and the data seed), and the answer to a spot check's reveal request.
// The trainer keeps the committed checkpoints; the server's half is verification/server_gate.h.
//
// Contract: internal to the worker; used on the worker's thread only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "fedml/api/client_trainer.h"
#include "fedml/core/message.h"

namespace fedml::api::verification {

struct VerifiedTask {
  /// Steps between committed checkpoints: 0 = no verified work asked, -1 = the attributes are
  /// malformed (the task is refused).
  std::int64_t checkpoint_interval = 0;
  std::optional<std::uint64_t> data_seed;  // the seed the server assigned, when it did
};
VerifiedTask ParseTaskAttrs(const std::map<std::string, std::string>& attrs);

/// Answers the reveal request `msg` into `reply` (already addressed, with its stage attr): the
/// client's committed checkpoints k and k + 1, or an "error" attr saying why they are not held
/// (the client then fails its check; the worker goes on serving).
void AnswerReveal(ClientTrainer& trainer, const core::Message& msg, core::Message& reply);

}  // namespace fedml::api::verification
