// Private to core/src/security: OpenSSL's error queue as a Status, and owning handles.
#pragma once

#include <openssl/err.h>
#include <openssl/evp.h>

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

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
/// An owned EVP_PKEY.
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

/// INTERNAL "<what>: <OpenSSL's error queue>".
inline Status OpensslError(const std::string& what) {
  return Status::Internal(what + ": " + OpensslReasons());
}

}  // namespace fedml::core::security
