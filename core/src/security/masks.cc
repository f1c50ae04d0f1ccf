// The masks of secure aggregation applied to a running sum (ApplyMasks in crypto.h): each
// mask's AES-256-CTR keystream is produced in cache-sized chunks and added (or subtracted) into
// the accumulator as it comes, instead of expanding a whole mask and adding it in a second pass.
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>  // AES-256-CTR at a counter offset, which ExpandMask does not offer

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fedml/core/defer.h"
#include "fedml/core/parallel.h"
#include "fedml/core/security/crypto.h"
#include "fedml/core/security/quantization.h"
#include "openssl_util.h"

namespace fedml::core::security {
namespace {

namespace sec = core::security;

using core::Defer;

void Wipe(std::vector<std::uint32_t>& v) {
  if (!v.empty()) OPENSSL_cleanse(v.data(), v.size() * sizeof(std::uint32_t));
}

// The server's Finish may split the accumulator between threads (each keystream can start at any
// block, by setting the counter), see MaskThreads.

// 16 KiB each of accumulator, keystream and the zeros it is encrypted from stay within L1 or
// close to it; larger pieces spill to L2, smaller ones pay OpenSSL's per-call cost more often
// (measured on the reference VM: 16-32 KiB with 64 contexts best, ~0.9 of bare AES-CTR).
constexpr std::size_t kMaskChunkBytes = 16 * 1024;
constexpr std::size_t kMaskChunkWords = kMaskChunkBytes / sizeof(std::uint32_t);
const std::uint8_t kMaskZeros[kMaskChunkBytes] = {};
// AES contexts live at once: each pass over the accumulator serves this many masks. 64 contexts
// (key schedules) stay cache-resident; the accumulator then crosses memory once per 64 masks.
constexpr std::size_t kMaskBatch = 64;
// Keystream bytes below which another thread does not pay for its start (tens of
// microseconds): ~3 ms of AES-CTR.
constexpr std::size_t kMaskBytesPerThread = std::size_t{16} << 20;

struct CipherFree {
  void operator()(EVP_CIPHER* c) const { EVP_CIPHER_free(c); }
};

// INTERNAL "<what>: <OpenSSL's reasons>", emptying this thread's error queue.
Status MaskError(const char* what) {
  return Status::Internal(std::string(what) + ": " + OpensslReasons());
}

// Applies every term to acc[begin, end), keystream words begin..end-1 of each mask. begin is a
// multiple of 4 words (one AES block), so the counter block starts at begin / 4, big-endian, as
// CTR mode counts from the all-zero block.
Status ApplyMaskRange(const std::vector<MaskTerm>& terms, std::uint32_t* acc, std::size_t begin,
                      std::size_t end, std::uint64_t modulus) {
  ERR_clear_error();
  std::unique_ptr<EVP_CIPHER, CipherFree> cipher(EVP_CIPHER_fetch(nullptr, "AES-256-CTR", nullptr));
  if (!cipher) return MaskError("cannot fetch AES-256-CTR for the masks");
  std::uint8_t iv[16] = {};
  const std::uint64_t block = static_cast<std::uint64_t>(begin / 4);
  for (int i = 0; i < 8; ++i) iv[15 - i] = static_cast<std::uint8_t>(block >> (8 * i));
  std::vector<CipherCtxPtr> ctx;
  std::vector<std::uint32_t> keystream(std::min(kMaskChunkWords, end - begin));
  Defer wipe_keystream([&] { Wipe(keystream); });
  std::uint8_t* ks = reinterpret_cast<std::uint8_t*>(keystream.data());  // uint8_t may alias
  for (std::size_t first = 0; first < terms.size(); first += kMaskBatch) {
    const std::size_t batch = std::min(kMaskBatch, terms.size() - first);
    for (std::size_t j = 0; j < batch; ++j) {
      const bool fresh = j >= ctx.size();
      if (fresh) {
        ctx.emplace_back(EVP_CIPHER_CTX_new());
        if (!ctx.back()) return MaskError("cannot allocate an AES-256-CTR context");
      }
      // A reused context keeps its cipher and only takes the new key and counter.
      if (EVP_EncryptInit_ex(ctx[j].get(), fresh ? cipher.get() : nullptr, nullptr,
                             terms[first + j].seed.data(), iv) != 1) {
        return MaskError("cannot set up AES-256-CTR for a mask");
      }
    }
    for (std::size_t at = begin; at < end; at += kMaskChunkWords) {
      const std::size_t words = std::min(kMaskChunkWords, end - at);
      const int bytes = static_cast<int>(words * sizeof(std::uint32_t));
      for (std::size_t j = 0; j < batch; ++j) {
        int out_len = 0;
        if (EVP_EncryptUpdate(ctx[j].get(), ks, &out_len, kMaskZeros, bytes) != 1 ||
            out_len != bytes) {
          return MaskError("AES-256-CTR failed while expanding a mask");
        }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        for (std::size_t i = 0; i < words; ++i) keystream[i] = __builtin_bswap32(keystream[i]);
#endif
        if (terms[first + j].add) {
          sec::AddModInPlace(acc + at, keystream.data(), words, modulus);
        } else {
          sec::SubModInPlace(acc + at, keystream.data(), words, modulus);
        }
      }
    }
  }
  return Status::Ok();
}

// Applies every term to acc[0, len) with up to max_threads threads, each owning a slice of acc:
// no two threads touch the same word, and each word sees the same additions in the same order
// whatever the split, so the result does not depend on the thread count. A thread gets at least
// kMaskBytesPerThread of keystream.
}  // namespace

Status ApplyMasks(const std::vector<MaskTerm>& terms, std::uint32_t* acc, std::size_t len,
                  std::uint64_t modulus, int max_threads) {
  for (const MaskTerm& t : terms) {
    if (t.seed.size() != 32) {
      return Status::InvalidArgument("a mask seed must be 32 bytes, got " +
                                     std::to_string(t.seed.size()));
    }
  }
  if (max_threads <= 0) {
    max_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (terms.empty() || len == 0) return Status::Ok();
  const std::size_t min_words =
      std::max(kMaskChunkWords, kMaskBytesPerThread / (sizeof(std::uint32_t) * terms.size()));
  // Inner bounds on 16 words: a 64-byte cache line and a whole number of AES blocks.
  return core::ParallelRanges(len, max_threads, min_words, 16,
                              [&](std::size_t begin, std::size_t end) {
                                return ApplyMaskRange(terms, acc, begin, end, modulus);
                              });
}

}  // namespace fedml::core::security
