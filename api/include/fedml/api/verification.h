// Verified work (docs/verification.md): clients commit to their training trajectory
// (fedml/core/security/commitment.h), the round controller spot-checks a random segment of some
// updates by replaying it, and contribution accounts (fedml/algorithms/reputation.h) slash the
// stake of clients caught. This header holds the controller's options and the message vocabulary
// that the controller and ClientManager share; the protocol itself lives in the round controller.
//
// Messages, all within one synchronous round:
//   - TRAIN_TASK attrs kVerifyIntervalAttr (steps between checkpoints) and kVerifySeedAttr (the
//     data-order seed the server assigns): the worker trains with TrainTask::checkpoint_interval
//     and that seed, and its CLIENT_UPDATE's blob is the EncodeCommitment of the trajectory.
//   - PROTOCOL stage kVerifyStageReveal, attr kVerifySegmentAttr = k, to the rank that trained the
//     client: the answer's model is checkpoint k of the trajectory and extra kVerifyNextExtra is
//     checkpoint k + 1, or attr "error" says why it cannot reveal them (a failed check).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "fedml/algorithms/reputation.h"
#include "fedml/api/client_trainer.h"
#include "fedml/core/bytes.h"

namespace fedml::api {

inline constexpr const char* kVerifyIntervalAttr = "verify.interval";
inline constexpr const char* kVerifySeedAttr = "verify.seed";
inline constexpr const char* kVerifyStageReveal = "verify_reveal";
inline constexpr const char* kVerifySegmentAttr = "verify.segment";
inline constexpr const char* kVerifyNextExtra = "verify.next";

/// Re-executes one committed segment on data the server can read (the server's trainer: its
/// ReplaySegment) and returns the model after it. Called on the controller's thread only.
using SegmentReplayer = std::function<Result<core::ModelState>(const ReplayTask&)>;

/// What the server knows of one client's local work in a task, from its own copy of the data
/// set (the server's trainer): what an honest update of that client claims.
struct ExpectedWork {
  std::int64_t num_samples = 0;  // its training samples: the FedAvg weight it may claim
  std::int64_t total_steps = 0;  // its optimizer steps: LocalSteps(epochs, num_samples, batch)
};

/// The optimizer steps of `epochs` passes over `samples` samples in batches of `batch_size` (the
/// last batch of an epoch may be short): what the built-in trainer takes. batch_size >= 1.
inline std::int64_t LocalSteps(std::int64_t epochs, std::int64_t samples, std::int64_t batch_size) {
  return epochs * ((samples + batch_size - 1) / batch_size);
}

/// A client's expected work, or UNIMPLEMENTED when the server cannot know it (its trainer does
/// not read that client's data). Called on the controller's thread only.
using ExpectedWorkFn = std::function<Result<ExpectedWork>(std::int64_t client)>;

/// The round controller's verification settings (ServerOptions::verification).
///
/// What happens to an update, in order:
///  1. Commitment check, on arrival: the commitment must decode, start at the global model the
///     round sent (checkpoint 0's SHA-256), end at the update itself (last checkpoint), use the
///     interval and data seed the task named, claim the update's sample count, and claim exactly
///     the samples and optimizer steps the server expects of that client (ServerOptions::
///     expected_work, from the server's copy of the data set; with spot checks an update whose
///     work the server cannot know is refused). Otherwise the update is refused outright and the
///     client's account takes a failed check ("mismatch"). Without the step check a client could
///     commit to 0 steps (one checkpoint, nothing to spot-check) and never be checked.
///  2. Spot check, with probability `probability`, decided by SelectSpotCheck(secret, ...) after
///     the commitment arrived, so the client cannot know beforehand: its rank reveals checkpoints
///     k and k + 1 of a random segment k (bounded by round_timeout; a rank that is gone leaves the
///     update out of the round unjudged), they must hash to the committed values ("mismatch"
///     otherwise), and `replay` re-executes the segment from checkpoint k. It passes when
///     |replayed - checkpoint k+1| <= threshold x |replayed - checkpoint k| (L2, relative to the
///     segment's honest movement, so one threshold fits every model size); "fail" otherwise.
///  3. Consequences: a failed or mismatched update is left out of the round, and the account
///     (accounts) loses reputation and stake; an accepted update earns
///     accounts.reward_per_sample x its samples, a count the server checked, never a bare claim.
///     Clients whose accounts are excluded are not sampled again. Checked updates are aggregated
///     after the unchecked ones, in sampled order.
struct VerificationOptions {
  bool enabled = false;
  std::int64_t checkpoint_interval = 5;  // >= 1
  double probability = 0.1;              // in [0, 1]
  double threshold = 1e-3;               // > 0
  /// The spot-check key (kSpotCheckSecretBytes bytes), which clients must never learn: empty
  /// means the controller draws one with SecureRandomBytes when Run starts (deployment). A
  /// simulation derives it from the seed so that every backend makes the same choices.
  core::Bytes secret;
  algorithms::ContributionOptions accounts;
  /// Required when probability > 0 (Run fails before the first round otherwise).
  SegmentReplayer replay;
};

/// The seed-derived spot-check key of a simulation: SHA-256("fedml-spot-check-secret-v1" |
/// seed as little-endian u64). Known to anyone who knows the seed, so only for simulations.
core::Bytes SimulationSpotCheckSecret(std::uint64_t seed);

}  // namespace fedml::api
