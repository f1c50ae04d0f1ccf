// Private to core/src/security: OpenSSL's error queue as a Status, and owning handles.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "fedml/core/status.h"

namespace fedml::core::security {

/// OpenSSL's error queue as "reason; reason", emptying it (this thread's queue).
inline std::string OpensslReasons() {
  std::string reasons;
  char buf[256];
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!reasons.empty()) reasons += "; ";
    reasons += buf;
  }
  if (reasons.empty()) reasons = "no reason given by OpenSSL";
  return reasons;
}

/// Frees an OpenSSL object with its own free function (which cleanses what it holds: a cipher
/// context's key schedule, a key).
template <class T, void (*Free)(T*)>
struct OpensslFree {
  void operator()(T* p) const { Free(p); }
};
/// Owned OpenSSL objects.
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpensslFree<EVP_PKEY, EVP_PKEY_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpensslFree<EVP_MD_CTX, EVP_MD_CTX_free>>;
using CipherCtxPtr =
    std::unique_ptr<EVP_CIPHER_CTX, OpensslFree<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, OpensslFree<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, OpensslFree<X509, X509_free>>;

/// INTERNAL "<what>: <OpenSSL's error queue>".
inline Status OpensslError(const std::string& what) {
  return Status::Internal(what + ": " + OpensslReasons());
}

}  // namespace fedml::core::security
