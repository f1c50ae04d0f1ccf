// Fixed-point encoding of float model updates into the ring Z_M, M = 2^k <= 2^32, the ring in
// which secure aggregation adds masked vectors: masks are uniform words reduced mod M, and they
// cancel in the sum only if the sum itself is computed mod M. Defaults are Flower SecAgg+'s
// (clipping range 8, quantization range 2^22, modulus 2^32).
//
// A value v is clipped to [-c, c], mapped linearly onto [0, q - 1] (c = clipping_range,
// q = quantization_range), and rounded stochastically to an integer: up with probability equal
// to the fractional part, so that the expected dequantized value is exactly the clipped value.
// The sum of N such integers is at most N (q - 1); as long as that stays below M the ring sum is
// the true integer sum, and DequantizeSum maps it back to the float sum.
//
// All functions are stateless and thread-safe (a Quantize call uses its own generator).
#pragma once

#include <cstddef>
#include <cstdint>

#include "fedml/core/status.h"

namespace fedml::core::security {

struct QuantizationOptions {
  /// Values are clipped to [-clipping_range, clipping_range]; finite and > 0.
  double clipping_range = 8.0;
  /// Quantized values lie in [0, quantization_range - 1]; >= 2 and < modulus.
  std::uint64_t quantization_range = std::uint64_t{1} << 22;
  /// The ring size: a power of two in [2, 2^32].
  std::uint64_t modulus = std::uint64_t{1} << 32;
};

/// The largest number of quantized vectors whose sum stays below the modulus:
/// floor((modulus - 1) / (quantization_range - 1)), as N (q - 1) <= M - 1 is what keeps the ring
/// sum exact. 1024 for the defaults. Assumes options that ValidateQuantization accepts apart from
/// num_summands (returns 0 for quantization_range < 2).
std::uint64_t MaxSummands(const QuantizationOptions& options);

/// OK when `options` are usable for a sum of num_summands quantized vectors. INVALID_ARGUMENT,
/// naming the values and what is allowed, when clipping_range is not finite and > 0, modulus is
/// not a power of two in [2, 2^32], quantization_range is not in [2, modulus), num_summands < 1,
/// or num_summands > MaxSummands(options) (the sum could wrap around the modulus: the message
/// says to lower quantization_range or the number of clients per sum, or raise the modulus).
Status ValidateQuantization(const QuantizationOptions& options, int num_summands);

/// Quantizes values[0..n) into out[0..n): clip to [-c, c], scale to [0, q - 1], and round
/// stochastically with a core::Rng seeded with rounding_seed (one Uniform draw per element, so
/// the result is a deterministic function of the inputs and the seed). Unbiased: the expected
/// dequantized value of each element is its clipped value; the error is below one step,
/// 2c / (q - 1). The rounding seed is not a secret the protocol relies on, but each client and
/// round should use a different one (e.g. DeriveSeed(seed, {round, client})) so that rounding
/// errors average out.
/// Errors: INVALID_ARGUMENT for options ValidateQuantization(options, 1) refuses, for null
/// values/out with n > 0, or for a NaN or infinite value ("values[i] is NaN"); values are all
/// checked before anything is written, so out is untouched on error.
Status Quantize(const float* values, std::size_t n, const QuantizationOptions& options,
                std::uint64_t rounding_seed, std::uint32_t* out);

/// The float sum of num_summands vectors from the ring sum of their quantizations: out[i] =
/// sum[i] * 2c / (q - 1) - num_summands * c. The inverse of Quantize up to rounding: the error of
/// each element is below num_summands steps (2c / (q - 1) each) plus float rounding.
/// Errors: INVALID_ARGUMENT for options ValidateQuantization(options, num_summands) refuses, for
/// null sum/out with n > 0, or for sum[i] >= modulus (not reduced); DATA_LOSS naming the index
/// when sum[i] > num_summands * (q - 1), which no sum of num_summands quantized values can be:
/// the masks did not cancel (a missing or wrong unmask, or vectors from different options).
/// out is untouched on error.
Status DequantizeSum(const std::uint32_t* sum, std::size_t n, int num_summands,
                     const QuantizationOptions& options, float* out);

/// acc[i] = (acc[i] + x[i]) mod modulus, i in [0, n). Precondition (asserted in debug builds):
/// modulus a power of two in [2, 2^32]. The inputs may be any words (raw ExpandMask output, for
/// instance): the result is always reduced, since 2^32 is a multiple of the modulus. With 2^32
/// this is a plain wrapping uint32 add; a smaller modulus is applied as a bit mask. Vectorized,
/// with AVX2 where the CPU has it (the result is the same either way). acc and x may be the same
/// array, but must not otherwise overlap.
void AddModInPlace(std::uint32_t* acc, const std::uint32_t* x, std::size_t n,
                   std::uint64_t modulus);

/// acc[i] = (acc[i] - x[i]) mod modulus; the same contract as AddModInPlace.
void SubModInPlace(std::uint32_t* acc, const std::uint32_t* x, std::size_t n,
                   std::uint64_t modulus);

/// The most vectors AddModInPlace folds in one pass over acc (more are taken this many at a time).
constexpr std::size_t kMaxModFold = 4;
/// acc[i] = (acc[i] + xs[0][i] + ... + xs[count - 1][i]) mod modulus, i in [0, n): the same as
/// count AddModInPlace calls, but acc crosses memory once per kMaxModFold vectors instead of once
/// per vector (how a server folds several clients' inputs into a running sum). The same
/// precondition on modulus; no xs[j] may overlap acc (they may overlap each other). count 0
/// leaves acc as it is.
void AddModInPlace(std::uint32_t* acc, const std::uint32_t* const* xs, std::size_t count,
                   std::size_t n, std::uint64_t modulus);

}  // namespace fedml::core::security
