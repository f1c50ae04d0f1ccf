// Verified work, the client's half and the server's bookkeeping: a client that trains
// with verification enabled sends, with its update, a TrainingCommitment -- SHA-256 hashes of its
// model every `checkpoint_interval` steps, the seed of its data order, a hash of the batch
// indices it drew, and its hyperparameters. The server spot-checks a random part of the work:
//
//   1. The client trains, checkpointing at steps 0, I, 2I, ..., total_steps (IsCheckpointStep),
//      hashes every checkpoint with CheckpointSha256 and its batches with BatchIndicesHasher,
//      and sends the update together with EncodeCommitment(commitment).
//   2. The server decodes it (DecodeCommitment validates it) and rejects the update outright --
//      a "mismatch" -- when checkpoint 0 is not the hash of the global model it handed out, or
//      the last checkpoint is not the hash of the update's state (CheckpointMatches), or the
//      batch indices regenerated from data_seed (cheap: no training) do not hash to
//      batch_indices_sha256.
//   3. It decides with SelectSpotCheck whether to check this update and which segment k.
//   4. If so it asks for the checkpoints at steps SegmentStart(k) and SegmentEnd(k), checks both
//      against the commitment (CheckpointMatches; a mismatch again rejects the update), replays
//      the segment's steps from the first with the committed hyperparameters and batches, and
//      passes when StateL2Distance(replayed, committed end) <= the threshold (SegmentPasses).
//
// Only step 4's distance allows for floating-point nondeterminism (other hardware, other kernel
// choices); every hash must match exactly.
//
// Everything here is stateless except BatchIndicesHasher (one object, one thread at a time); the
// free functions are safe to call from any number of threads at once. OpenSSL stays in the .cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fedml/core/bytes.h"
#include "fedml/core/model_state.h"
#include "fedml/core/status.h"

namespace fedml::core::security {

/// Current version of the EncodeCommitment format. 2: the checkpoint hashes it holds
/// (CheckpointSha256) length-prefix tensor names; version 1's ended them with a zero byte, which
/// a name holding a zero byte could forge.
inline constexpr std::uint8_t kCommitmentFormatVersion = 2;
/// The most checkpoints a commitment may hold (an encoded commitment is then about 68 MiB).
/// Choose checkpoint_interval >= total_steps / 2^20.
inline constexpr std::int64_t kMaxCommitmentCheckpoints = std::int64_t{1} << 20;
/// The most hyperparameters, and the longest hyperparameter name (bytes).
inline constexpr std::size_t kMaxCommitmentHyperparameters = 256;
inline constexpr std::size_t kMaxHyperparameterNameBytes = 256;
/// The size of SelectSpotCheck's server secret.
inline constexpr std::size_t kSpotCheckSecretBytes = 32;

/// What a client commits to about one round's local training. Hashes are 64 lowercase hex
/// characters (the form StateSha256, Sha256Hex and the ledger use), not raw bytes.
struct TrainingCommitment {
  /// Seed of the client's data order (shuffling, sampling): with it the server regenerates every
  /// batch's indices.
  std::uint64_t data_seed = 0;
  /// Steps between checkpoints; >= 1.
  std::int64_t checkpoint_interval = 1;
  /// Optimizer steps the client took; >= 0 (0: one checkpoint, nothing to spot-check).
  std::int64_t total_steps = 0;
  /// CheckpointSha256 of the model at steps 0, I, 2I, ... and at total_steps: the last one is
  /// always present even when total_steps is not a multiple of I, so there are
  /// NumCheckpoints(total_steps, I) = ceil(total_steps / I) + 1 of them. [0] is the model the
  /// client started from, the last is the update it sent.
  std::vector<std::string> checkpoint_sha256;
  /// BatchIndicesHasher's digest of every batch's indices, in step order.
  std::string batch_indices_sha256;
  /// The training hyperparameters the replay uses (learning rate, momentum, batch size, ...):
  /// names non-empty and at most kMaxHyperparameterNameBytes, values finite, at most
  /// kMaxCommitmentHyperparameters of them. Names are the trainer's; this module gives none a
  /// meaning.
  std::map<std::string, double> hyperparameters;
  /// Samples the client trained on (its FedAvg weight and reward basis); >= 1.
  std::int64_t num_samples = 1;
};

bool operator==(const TrainingCommitment& a, const TrainingCommitment& b);
inline bool operator!=(const TrainingCommitment& a, const TrainingCommitment& b) {
  return !(a == b);
}

// ---- segments ----------------------------------------------------------------------------------
// Segment k runs from checkpoint k (step k * I) to checkpoint k + 1 (step min((k + 1) * I,
// total_steps)); the last segment is shorter when total_steps is not a multiple of I. These are
// pure arithmetic without overflow; for arguments out of range (interval < 1, total_steps < 0,
// k outside [0, NumSegments)) they return -1 (IsCheckpointStep: false).

/// ceil(total_steps / interval): the number of segments.
std::int64_t NumSegments(std::int64_t total_steps, std::int64_t interval);
/// NumSegments + 1: the number of checkpoints (checkpoint_sha256.size()).
std::int64_t NumCheckpoints(std::int64_t total_steps, std::int64_t interval);
/// The step at which segment k starts (its first checkpoint): k * interval.
std::int64_t SegmentStart(std::int64_t k, std::int64_t interval, std::int64_t total_steps);
/// The step at which segment k ends (checkpoint k + 1): min((k + 1) * interval, total_steps).
std::int64_t SegmentEnd(std::int64_t k, std::int64_t interval, std::int64_t total_steps);
/// Whether the trainer checkpoints after `step` steps: step is a multiple of interval, or
/// step == total_steps (0 <= step <= total_steps).
bool IsCheckpointStep(std::int64_t step, std::int64_t interval, std::int64_t total_steps);

// ---- the commitment's encoding -----------------------------------------------------------------

/// OK when `c` is well formed: checkpoint_interval >= 1, total_steps >= 0, num_samples >= 1,
/// NumCheckpoints(total_steps, interval) <= kMaxCommitmentCheckpoints and equal to
/// checkpoint_sha256.size(), every hash 64 lowercase hex digits, hyperparameters as the struct
/// says. Otherwise INVALID_ARGUMENT naming the field ("checkpoint_sha256[3] is ...").
Status ValidateCommitment(const TrainingCommitment& c);

/// The commitment's binary form. All integers little-endian:
///   "FTC" | u8 version (2) | i64 checkpoint_interval | i64 total_steps | i64 num_samples |
///   u64 data_seed | u32 n | n x string (checkpoint_sha256) | string (batch_indices_sha256) |
///   u32 h | h x (string name | u64 IEEE-754 bits of the value)
/// where a string is u32 length | bytes. Hyperparameters are written in the map's (byte-wise
/// ascending) order. The encoding is injective, so CommitmentDigest binds every field. Any
/// commitment encodes (nothing is checked here); DecodeCommitment accepts exactly the encodings
/// of commitments that ValidateCommitment accepts, so Encode(Decode(b)) == b.
Bytes EncodeCommitment(const TrainingCommitment& c);

/// Parses EncodeCommitment's form. INVALID_ARGUMENT naming the field for anything else: a wrong
/// magic or unknown version, bytes missing ("truncated in checkpoint_sha256[2]"), trailing bytes,
/// a count larger than the bytes left or the limits (checked before anything is allocated),
/// names out of order or repeated, and whatever ValidateCommitment refuses (non-finite
/// hyperparameters, a checkpoint count that does not fit total_steps and the interval, ...).
Result<TrainingCommitment> DecodeCommitment(const Bytes& encoded);

/// SHA-256 (64 lowercase hex) of EncodeCommitment(c): the value SelectSpotCheck and a ledger
/// record take. INTERNAL when OpenSSL fails.
Result<std::string> CommitmentDigest(const TrainingCommitment& c);

// ---- hashes ------------------------------------------------------------------------------------

/// SHA-256 (64 lowercase hex) of a model state: for each tensor the byte length of its name as a
/// little-endian u64, the name, its rank and dimensions as little-endian int64, then its float32
/// values little-endian. The length prefix keeps the encoding injective for any names: with a
/// terminator instead, a state holding a tensor whose name contains a zero byte could hash like
/// another state with different tensors. Byte for byte
/// api's StateSha256 (which the ledger records), here so that torch-free code and the trainer
/// hash checkpoints the same way. INTERNAL when OpenSSL fails.
Result<std::string> CheckpointSha256(const ModelState& state);

/// Whether CheckpointSha256(state) equals c.checkpoint_sha256[index]. INVALID_ARGUMENT when
/// index is outside [0, checkpoint_sha256.size()); INTERNAL when OpenSSL fails. A false result
/// is the client's fault (a "mismatch": reject its update).
Result<bool> CheckpointMatches(const TrainingCommitment& c, std::int64_t index,
                               const ModelState& state);

/// Incremental SHA-256 over the sequence of batch index lists of one training run: for each
/// batch, in step order, u64 n (little-endian) then its n indices as little-endian int64. The
/// length prefix keeps batch boundaries in the hash ([1,2][3] and [1][2,3] differ). An empty
/// sequence (no Add) hashes the empty string.
/// Owns an OpenSSL digest context (freed with the object). Movable, not copyable. Not
/// thread-safe: one thread at a time.
class BatchIndicesHasher {
 public:
  BatchIndicesHasher();
  ~BatchIndicesHasher();
  BatchIndicesHasher(BatchIndicesHasher&& other) noexcept;
  BatchIndicesHasher& operator=(BatchIndicesHasher&& other) noexcept;
  BatchIndicesHasher(const BatchIndicesHasher&) = delete;
  BatchIndicesHasher& operator=(const BatchIndicesHasher&) = delete;

  /// Adds one batch of n indices (idx may be null when n is 0). An OpenSSL failure, or a call
  /// after Finish, is remembered and reported by Finish.
  void Add(const std::int64_t* idx, std::size_t n);
  void Add(const std::vector<std::int64_t>& idx) { Add(idx.data(), idx.size()); }
  /// Batches added so far.
  std::int64_t batches() const { return batches_; }
  /// The digest, 64 lowercase hex. Once only: FAILED_PRECONDITION when called again, after an
  /// Add that came after Finish, or on a moved-from hasher; INTERNAL when OpenSSL failed.
  Result<std::string> Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::int64_t batches_ = 0;
};

// ---- spot checks -------------------------------------------------------------------------------

/// Whether to spot-check an update, and which segment to ask for.
struct SpotCheck {
  bool check = false;
  std::int64_t segment = -1;  // in [0, num_segments) when check; -1 otherwise
};

/// Decides, deterministically, whether to check client `client_id`'s update of `round` and which
/// segment: H = HMAC-SHA256(server_secret, "fedml-spot-check-v1" | i64 round | i64 client_id |
/// u32 length | commitment_digest), integers little-endian; u = (first 8 bytes of H as a
/// little-endian u64 >> 11) * 2^-53, uniform in [0, 1); check when u < verify_probability; the
/// segment is floor(v * num_segments / 2^64) for v the next 8 bytes (uniform up to a relative
/// bias below num_segments / 2^64: under 2^-44 within kMaxCommitmentCheckpoints).
/// verify_probability 0 never checks, 1 always; num_segments 0 never checks (there is no step to
/// replay).
///
/// Why the client cannot predict it: without server_secret, HMAC-SHA256's output is
/// indistinguishable from random to the client, so it learns nothing about (check, segment)
/// before the server answers; and because the digest of its commitment is an input, the
/// decision exists only after the client has committed, so the client cannot fit its
/// commitment to the segment (fake everything except the segment that will be checked). For
/// this to hold the server must (a) draw server_secret with SecureRandomBytes(32) and never send
/// or log it, and (b) accept one commitment per client and round: if a client could withdraw a
/// commitment after learning it was not checked and send another, it could try until it is not
/// checked. Being deterministic, a restarted server with the same secret makes the same choices
/// (no fresh randomness is needed per decision).
///
/// Errors: INVALID_ARGUMENT when server_secret is not kSpotCheckSecretBytes bytes,
/// verify_probability is not in [0, 1] (or NaN), or num_segments < 0; INTERNAL when OpenSSL fails.
Result<SpotCheck> SelectSpotCheck(const Bytes& server_secret, std::int64_t round,
                                  std::int64_t client_id, const std::string& commitment_digest,
                                  double verify_probability, std::int64_t num_segments);

// ---- replay comparison -------------------------------------------------------------------------

/// L2 norm of a - b (in double): reuses L2Distance after checking the layouts, so that a
/// replayed model and a revealed checkpoint of another shape are an error, not a distance.
/// INVALID_ARGUMENT naming the first tensor that differs in name, shape or dtype. NaN or Inf in
/// either state gives a NaN or Inf distance, which SegmentPasses counts as a fail.
Result<double> StateL2Distance(const ModelState& a, const ModelState& b);

/// distance <= threshold; false for a NaN distance (so a NaN in a checkpoint never passes).
inline bool SegmentPasses(double distance, double threshold) { return distance <= threshold; }

}  // namespace fedml::core::security
