#include "fedml/core/security/commitment.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <utility>

#include "fedml/core/bytes.h"
#include "fedml/core/security/crypto.h"
#include "openssl_util.h"

namespace fedml::core::security {
namespace {

constexpr std::string_view kMagic = "FTC";
constexpr std::size_t kHeaderBytes = 4 + 4 * 8;  // magic, version, four 64-bit fields
constexpr std::string_view kSpotCheckLabel = "fedml-spot-check-v1";

Status CheckHash(const std::string& value, const std::string& field) {
  if (IsSha256Hex(value)) return Status::Ok();
  return Status::InvalidArgument(field + " is " + std::to_string(value.size()) +
                                 " characters that are not a SHA-256 digest; it must be 64 "
                                 "lowercase hex digits");
}

// SHA-256 into hex from a context that has been fed everything.
Result<std::string> FinishHex(EVP_MD_CTX* ctx) {
  std::uint8_t digest[32];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, digest, &len) != 1 || len != sizeof digest) {
    return OpensslError("SHA-256 failed");
  }
  return HexEncode(digest, sizeof digest);
}

std::uint64_t DoubleBits(double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

// The scalar fields, checked in the order the encoding holds them so that DecodeCommitment can
// refuse a bad count before it allocates for it.
Status ValidateScalars(const TrainingCommitment& c) {
  if (c.checkpoint_interval < 1) {
    return Status::InvalidArgument("checkpoint_interval is " +
                                   std::to_string(c.checkpoint_interval) + "; it must be >= 1");
  }
  if (c.total_steps < 0) {
    return Status::InvalidArgument("total_steps is " + std::to_string(c.total_steps) +
                                   "; it must be >= 0");
  }
  if (c.num_samples < 1) {
    return Status::InvalidArgument("num_samples is " + std::to_string(c.num_samples) +
                                   "; it must be >= 1");
  }
  const std::int64_t checkpoints = NumCheckpoints(c.total_steps, c.checkpoint_interval);
  if (checkpoints > kMaxCommitmentCheckpoints) {
    return Status::InvalidArgument(
        "total_steps " + std::to_string(c.total_steps) + " at checkpoint_interval " +
        std::to_string(c.checkpoint_interval) + " needs " + std::to_string(checkpoints) +
        " checkpoints; at most " + std::to_string(kMaxCommitmentCheckpoints) +
        " are allowed (raise checkpoint_interval)");
  }
  return Status::Ok();
}

Status CheckpointCount(std::int64_t got, const TrainingCommitment& c) {
  const std::int64_t want = NumCheckpoints(c.total_steps, c.checkpoint_interval);
  if (got == want) return Status::Ok();
  return Status::InvalidArgument(
      "checkpoint_sha256 holds " + std::to_string(got) + " hashes; total_steps " +
      std::to_string(c.total_steps) + " at checkpoint_interval " +
      std::to_string(c.checkpoint_interval) + " has " + std::to_string(want) +
      " checkpoints (steps 0, interval, 2*interval, ..., and total_steps)");
}

Status CheckHyperparameter(const std::string& name, double value) {
  if (name.empty()) return Status::InvalidArgument("a hyperparameter has an empty name");
  if (name.size() > kMaxHyperparameterNameBytes) {
    return Status::InvalidArgument("a hyperparameter name is " + std::to_string(name.size()) +
                                   " bytes; at most " +
                                   std::to_string(kMaxHyperparameterNameBytes) + " are allowed");
  }
  if (!std::isfinite(value)) {
    return Status::InvalidArgument("hyperparameter '" + name + "' is " + std::to_string(value) +
                                   "; hyperparameters must be finite");
  }
  return Status::Ok();
}

}  // namespace

bool operator==(const TrainingCommitment& a, const TrainingCommitment& b) {
  // Hyperparameters compare by bits, as the encoding (and so the digest) sees them: -0.0 != 0.0.
  if (a.hyperparameters.size() != b.hyperparameters.size()) return false;
  for (auto i = a.hyperparameters.begin(), j = b.hyperparameters.begin();
       i != a.hyperparameters.end(); ++i, ++j) {
    if (i->first != j->first || DoubleBits(i->second) != DoubleBits(j->second)) return false;
  }
  return a.data_seed == b.data_seed && a.checkpoint_interval == b.checkpoint_interval &&
         a.total_steps == b.total_steps && a.checkpoint_sha256 == b.checkpoint_sha256 &&
         a.batch_indices_sha256 == b.batch_indices_sha256 && a.num_samples == b.num_samples;
}

// ---- segments ----------------------------------------------------------------------------------

std::int64_t NumSegments(std::int64_t total_steps, std::int64_t interval) {
  if (interval < 1 || total_steps < 0) return -1;
  return total_steps / interval + (total_steps % interval != 0 ? 1 : 0);
}

std::int64_t NumCheckpoints(std::int64_t total_steps, std::int64_t interval) {
  const std::int64_t segments = NumSegments(total_steps, interval);
  return segments < 0 ? -1 : segments + 1;  // segments <= total_steps < INT64_MAX
}

std::int64_t SegmentStart(std::int64_t k, std::int64_t interval, std::int64_t total_steps) {
  const std::int64_t segments = NumSegments(total_steps, interval);
  if (k < 0 || k >= segments) return -1;
  return k * interval;  // < total_steps: no overflow
}

std::int64_t SegmentEnd(std::int64_t k, std::int64_t interval, std::int64_t total_steps) {
  const std::int64_t start = SegmentStart(k, interval, total_steps);
  if (start < 0) return -1;
  // start + interval may overflow; total_steps - start may not.
  return total_steps - start < interval ? total_steps : start + interval;
}

bool IsCheckpointStep(std::int64_t step, std::int64_t interval, std::int64_t total_steps) {
  if (interval < 1 || step < 0 || step > total_steps) return false;
  return step % interval == 0 || step == total_steps;
}

// ---- the commitment's encoding -----------------------------------------------------------------

Status ValidateCommitment(const TrainingCommitment& c) {
  FEDML_RETURN_IF_ERROR(ValidateScalars(c));
  FEDML_RETURN_IF_ERROR(CheckpointCount(static_cast<std::int64_t>(c.checkpoint_sha256.size()), c));
  for (std::size_t i = 0; i < c.checkpoint_sha256.size(); ++i) {
    FEDML_RETURN_IF_ERROR(
        CheckHash(c.checkpoint_sha256[i], "checkpoint_sha256[" + std::to_string(i) + "]"));
  }
  FEDML_RETURN_IF_ERROR(CheckHash(c.batch_indices_sha256, "batch_indices_sha256"));
  if (c.hyperparameters.size() > kMaxCommitmentHyperparameters) {
    return Status::InvalidArgument("there are " + std::to_string(c.hyperparameters.size()) +
                                   " hyperparameters; at most " +
                                   std::to_string(kMaxCommitmentHyperparameters) + " are allowed");
  }
  for (const auto& [name, value] : c.hyperparameters) {
    FEDML_RETURN_IF_ERROR(CheckHyperparameter(name, value));
  }
  return Status::Ok();
}

Bytes EncodeCommitment(const TrainingCommitment& c) {
  ByteWriter w(kHeaderBytes + 8 + 68 * (c.checkpoint_sha256.size() + 1) +
               48 * c.hyperparameters.size());
  w.Raw(kMagic).U8(kCommitmentFormatVersion);
  w.U64(static_cast<std::uint64_t>(c.checkpoint_interval));
  w.U64(static_cast<std::uint64_t>(c.total_steps));
  w.U64(static_cast<std::uint64_t>(c.num_samples));
  w.U64(c.data_seed);
  w.U32(static_cast<std::uint32_t>(c.checkpoint_sha256.size()));
  for (const std::string& h : c.checkpoint_sha256) w.String(h);
  w.String(c.batch_indices_sha256);
  w.U32(static_cast<std::uint32_t>(c.hyperparameters.size()));
  for (const auto& [name, value] : c.hyperparameters) w.String(name).F64(value);
  return w.Take();
}

Result<TrainingCommitment> DecodeCommitment(const Bytes& encoded) {
  ByteReader r(encoded, "training commitment");
  FEDML_RETURN_IF_ERROR(r.Magic(kMagic));
  FEDML_RETURN_IF_ERROR(r.Version8(kCommitmentFormatVersion));

  TrainingCommitment c;
  FEDML_ASSIGN_OR_RETURN(const std::uint64_t interval, r.U64("checkpoint_interval"));
  FEDML_ASSIGN_OR_RETURN(const std::uint64_t total, r.U64("total_steps"));
  FEDML_ASSIGN_OR_RETURN(const std::uint64_t samples, r.U64("num_samples"));
  FEDML_ASSIGN_OR_RETURN(c.data_seed, r.U64("data_seed"));
  c.checkpoint_interval = static_cast<std::int64_t>(interval);
  c.total_steps = static_cast<std::int64_t>(total);
  c.num_samples = static_cast<std::int64_t>(samples);
  FEDML_RETURN_IF_ERROR(ValidateScalars(c).WithContext("decoding a training commitment"));

  FEDML_ASSIGN_OR_RETURN(const std::uint32_t checkpoints, r.U32("the checkpoint count"));
  FEDML_RETURN_IF_ERROR(
      CheckpointCount(checkpoints, c).WithContext("decoding a training commitment"));
  // Every hash is at least its 4-byte length: refuse a count the bytes cannot hold before
  // reserving for it.
  FEDML_RETURN_IF_ERROR(
      r.Need(4 * static_cast<std::size_t>(checkpoints), "checkpoint_sha256 (its lengths alone)"));
  c.checkpoint_sha256.reserve(checkpoints);
  for (std::uint32_t i = 0; i < checkpoints; ++i) {
    FEDML_ASSIGN_OR_RETURN(std::string h,
                           r.String("checkpoint_sha256[" + std::to_string(i) + "]", 64));
    c.checkpoint_sha256.push_back(std::move(h));
  }
  FEDML_ASSIGN_OR_RETURN(c.batch_indices_sha256, r.String("batch_indices_sha256", 64));

  FEDML_ASSIGN_OR_RETURN(const std::uint32_t count, r.U32("the hyperparameter count"));
  if (count > kMaxCommitmentHyperparameters) {
    return Status::InvalidArgument("decoding a training commitment: it claims " +
                                   std::to_string(count) + " hyperparameters; at most " +
                                   std::to_string(kMaxCommitmentHyperparameters) + " are allowed");
  }
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string field = "hyperparameter " + std::to_string(i);
    FEDML_ASSIGN_OR_RETURN(std::string name,
                           r.String(field + "'s name", kMaxHyperparameterNameBytes));
    std::string value_field = field;
    value_field += " ('" + name + "')'s value";
    FEDML_ASSIGN_OR_RETURN(const double value, r.F64(value_field));
    FEDML_RETURN_IF_ERROR(
        CheckHyperparameter(name, value).WithContext("decoding a training commitment"));
    // The encoder writes the map in order; anything else (a repeat, another order) would be a
    // second encoding of the same commitment, or no commitment at all.
    if (!c.hyperparameters.empty() && !(c.hyperparameters.rbegin()->first < name)) {
      return Status::InvalidArgument("decoding a training commitment: hyperparameter '" + name +
                                     "' is out of order or repeated (names must be strictly "
                                     "ascending, byte-wise)");
    }
    c.hyperparameters.emplace_hint(c.hyperparameters.end(), std::move(name), value);
  }
  FEDML_RETURN_IF_ERROR(r.End("the last hyperparameter"));
  FEDML_RETURN_IF_ERROR(ValidateCommitment(c).WithContext("decoding a training commitment"));
  return c;
}

Result<std::string> CommitmentDigest(const TrainingCommitment& c) {
  const Bytes encoded = EncodeCommitment(c);
  return Sha256Hex(encoded.data(), encoded.size());
}

// ---- hashes ------------------------------------------------------------------------------------

Result<std::string> CheckpointSha256(const ModelState& state) {
  // Fed piece by piece instead of StateSha256's one model-sized copy: a checkpoint hash is taken
  // every interval steps, on the client, where a second copy of the model may not fit.
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return OpensslError("cannot set up SHA-256");
  }
  auto update = [&ctx](const void* p, std::size_t n) {
    return n == 0 || EVP_DigestUpdate(ctx.get(), p, n) == 1;
  };
  bool ok = true;
  for (const TensorSpec& spec : state.specs()) {
    ByteWriter head;
    head.U64(spec.name.size()).Raw(spec.name).U64(static_cast<std::uint64_t>(spec.shape.size()));
    for (std::int64_t d : spec.shape) head.U64(static_cast<std::uint64_t>(d));
    ok = ok && update(head.bytes().data(), head.size());
    const float* values = state.data() + spec.offset;
    const std::size_t n = spec.numel();
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    std::uint8_t buf[4096];
    for (std::size_t i = 0; i < n && ok;) {
      std::size_t m = 0;
      for (; m < sizeof buf / 4 && i < n; ++m, ++i) {
        std::uint32_t bits;
        std::memcpy(&bits, values + i, 4);
        StoreLe32(buf + 4 * m, bits);
      }
      ok = update(buf, 4 * m);
    }
#else
    ok = ok && update(values, n * sizeof(float));  // little-endian host: the bytes as they are
#endif
    if (!ok) break;
  }
  if (!ok) return OpensslError("SHA-256 failed");
  return FinishHex(ctx.get());
}

Result<bool> CheckpointMatches(const TrainingCommitment& c, std::int64_t index,
                               const ModelState& state) {
  if (index < 0 || index >= static_cast<std::int64_t>(c.checkpoint_sha256.size())) {
    return Status::InvalidArgument("checkpoint " + std::to_string(index) +
                                   " is not in the commitment, which holds " +
                                   std::to_string(c.checkpoint_sha256.size()) + " checkpoints");
  }
  FEDML_ASSIGN_OR_RETURN(const std::string sha, CheckpointSha256(state));
  // Both hashes are public (the client sent one, anyone can compute the other): a plain compare.
  return sha == c.checkpoint_sha256[static_cast<std::size_t>(index)];
}

struct BatchIndicesHasher::Impl {
  MdCtxPtr ctx;
  bool failed = false;    // an OpenSSL call failed
  bool finished = false;  // Finish ran
  bool misused = false;   // Add or Finish after Finish
};

BatchIndicesHasher::BatchIndicesHasher() : impl_(std::make_unique<Impl>()) {
  impl_->ctx.reset(EVP_MD_CTX_new());
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx.get(), EVP_sha256(), nullptr) != 1) {
    impl_->failed = true;
  }
}
BatchIndicesHasher::~BatchIndicesHasher() = default;
BatchIndicesHasher::BatchIndicesHasher(BatchIndicesHasher&& other) noexcept = default;
BatchIndicesHasher& BatchIndicesHasher::operator=(BatchIndicesHasher&& other) noexcept = default;

void BatchIndicesHasher::Add(const std::int64_t* idx, std::size_t n) {
  if (!impl_) return;  // moved from: Finish reports it
  if (impl_->finished) {
    impl_->misused = true;
    return;
  }
  if (impl_->failed) return;
  // Little-endian through a small buffer, so the digest is the same on any host.
  std::uint8_t buf[8 * 512];
  StoreLe64(buf, static_cast<std::uint64_t>(n));
  std::size_t used = 8;
  for (std::size_t i = 0; i < n; ++i) {
    if (used == sizeof buf) {
      if (EVP_DigestUpdate(impl_->ctx.get(), buf, used) != 1) impl_->failed = true;
      used = 0;
    }
    StoreLe64(buf + used, static_cast<std::uint64_t>(idx[i]));
    used += 8;
  }
  if (EVP_DigestUpdate(impl_->ctx.get(), buf, used) != 1) impl_->failed = true;
  ++batches_;
}

Result<std::string> BatchIndicesHasher::Finish() {
  if (!impl_)
    return Status::FailedPrecondition("BatchIndicesHasher::Finish on a moved-from hasher");
  if (impl_->finished || impl_->misused) {
    impl_->misused = true;
    return Status::FailedPrecondition(
        "BatchIndicesHasher::Finish called again, or Add called after Finish; use a new hasher "
        "for each training run");
  }
  impl_->finished = true;
  if (impl_->failed) return OpensslError("SHA-256 of the batch indices failed");
  return FinishHex(impl_->ctx.get());
}

// ---- spot checks -------------------------------------------------------------------------------

Result<SpotCheck> SelectSpotCheck(const Bytes& server_secret, std::int64_t round,
                                  std::int64_t client_id, const std::string& commitment_digest,
                                  double verify_probability, std::int64_t num_segments) {
  if (server_secret.size() != kSpotCheckSecretBytes) {
    return Status::InvalidArgument(
        "the spot-check server secret is " + std::to_string(server_secret.size()) +
        " bytes; it must be exactly " + std::to_string(kSpotCheckSecretBytes) +
        " (draw it with SecureRandomBytes)");
  }
  if (!(verify_probability >= 0.0 && verify_probability <= 1.0)) {
    return Status::InvalidArgument("verify_probability is " + std::to_string(verify_probability) +
                                   "; it must be in [0, 1]");
  }
  if (num_segments < 0) {
    return Status::InvalidArgument("num_segments is " + std::to_string(num_segments) +
                                   "; it must be >= 0");
  }
  if (commitment_digest.size() > std::numeric_limits<std::uint32_t>::max()) {
    return Status::InvalidArgument("the commitment digest is too long");
  }
  ByteWriter w;
  w.Raw(kSpotCheckLabel).U64(static_cast<std::uint64_t>(round));
  w.U64(static_cast<std::uint64_t>(client_id)).String(commitment_digest);
  const Bytes& message = w.bytes();

  std::uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), server_secret.data(), static_cast<int>(server_secret.size()),
           message.data(), message.size(), mac, &mac_len) == nullptr ||
      mac_len != 32) {
    return OpensslError("HMAC-SHA256 failed");
  }
  const std::uint64_t u_bits = LoadLe64(mac);
  const std::uint64_t v_bits = LoadLe64(mac + 8);
  // The MAC decides checks as long as the secret is in use: wiped like any derived key.
  OPENSSL_cleanse(mac, sizeof mac);

  SpotCheck out;
  // 53 bits: exactly representable, so u is uniform on the grid k * 2^-53 in [0, 1), and u < p
  // has probability p up to 2^-53; p = 1 always checks, p = 0 never.
  const double u = static_cast<double>(u_bits >> 11) * 0x1p-53;
  if (num_segments == 0 || !(u < verify_probability)) return out;
  out.check = true;
  // floor(v * n / 2^64): the high half of the 128-bit product (no division, no modulo).
  out.segment = static_cast<std::int64_t>(
      (static_cast<unsigned __int128>(v_bits) * static_cast<std::uint64_t>(num_segments)) >> 64);
  return out;
}

// ---- replay comparison -------------------------------------------------------------------------

Result<double> StateL2Distance(const ModelState& a, const ModelState& b) {
  FEDML_RETURN_IF_ERROR(a.CheckSameLayout(b, "the second model state"));
  return L2Distance(a, b);
}

}  // namespace fedml::core::security
