#include "fedml/core/security/signatures.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>  // X509_PURPOSE_SSL_CLIENT

#include "fedml/core/security/credentials.h"
#include "openssl_util.h"

namespace fedml::core::security {
namespace {

using StorePtr = std::unique_ptr<X509_STORE, OpensslFree<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, OpensslFree<X509_STORE_CTX, X509_STORE_CTX_free>>;

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

X509Ptr ParseCertificate(const std::string& pem) {
  if (pem.empty() || pem.size() > kMaxCertificatePemBytes) return nullptr;
  BioPtr bio = MemoryBio(pem);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  return cert;
}

Status NotACertificate(const std::string& pem) {
  if (pem.size() > kMaxCertificatePemBytes) {
    return Status::InvalidArgument("a certificate of " + std::to_string(pem.size()) +
                                   " bytes is longer than the " +
                                   std::to_string(kMaxCertificatePemBytes) + " accepted");
  }
  return Status::InvalidArgument("not a PEM certificate");
}

}  // namespace

struct SigningKey::Impl {
  PkeyPtr key;
};
struct VerifyingKey::Impl {
  PkeyPtr key;
};
struct CertificateAuthority::Impl {
  X509Ptr ca;
};

Result<SigningKey> SigningKey::FromPem(const std::string& key_pem) {
  BioPtr bio = MemoryBio(key_pem);
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    ERR_clear_error();  // its reasons could quote the key's bytes: never pass them on
    return Status::InvalidArgument("not a PEM private key");
  }
  return SigningKey(std::make_shared<const Impl>(Impl{std::move(key)}));
}

Result<Bytes> SigningKey::Sign(const Bytes& message) const {
  if (!impl_) return Status::FailedPrecondition("no signing key");
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::size_t size = 0;
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &size, message.data(), message.size()) != 1) {
    return OpensslError("cannot sign");
  }
  Bytes signature(size);
  if (EVP_DigestSign(ctx.get(), signature.data(), &size, message.data(), message.size()) != 1) {
    return OpensslError("cannot sign");
  }
  signature.resize(size);
  return signature;
}

Result<VerifyingKey> VerifyingKey::FromCertificate(const std::string& cert_pem) {
  X509Ptr cert = ParseCertificate(cert_pem);
  PkeyPtr key(cert ? X509_get_pubkey(cert.get()) : nullptr);
  if (!key) {
    ERR_clear_error();
    return NotACertificate(cert_pem);
  }
  return VerifyingKey(std::make_shared<const Impl>(Impl{std::move(key)}));
}

Status VerifyingKey::Verify(const Bytes& message, const Bytes& signature) const {
  if (!impl_) return Status::FailedPrecondition("no verifying key");
  if (signature.empty() || signature.size() > kMaxSignatureBytes) {
    return Status::InvalidArgument("a signature of " + std::to_string(signature.size()) +
                                   " bytes (1 to " + std::to_string(kMaxSignatureBytes) +
                                   " accepted)");
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1) {
    return OpensslError("cannot verify");
  }
  const int ok = EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                                  message.size());
  ERR_clear_error();  // a bad signature leaves reasons behind
  if (ok != 1) return Status::PermissionDenied("the signature does not verify");
  return Status::Ok();
}

Result<CertificateAuthority> CertificateAuthority::FromPem(const std::string& ca_pem) {
  X509Ptr ca = ParseCertificate(ca_pem);
  if (!ca) return Status::InvalidArgument("the CA is not a PEM certificate");
  return CertificateAuthority(std::make_shared<const Impl>(Impl{std::move(ca)}));
}

Result<CertifiedClient> CertificateAuthority::VerifyClient(const std::string& cert_pem) const {
  X509Ptr cert = ParseCertificate(cert_pem);
  if (!cert) return NotACertificate(cert_pem);
  // A store per call: X509_STORE is reference counted and not meant to be shared read-only
  // across threads while contexts are made from it; one CA certificate is cheap to add.
  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), impl_->ca.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1 ||
      X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT) != 1) {
    return OpensslError("cannot check a certificate");
  }
  const int verified = X509_verify_cert(ctx.get());
  const int error = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  if (verified != 1) {
    return Status::PermissionDenied(std::string("the certificate is not a client certificate of "
                                                "this deployment's CA: ") +
                                    X509_verify_cert_error_string(error));
  }
  char cn[256] = {0};
  const int cn_len =
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof cn);
  if (cn_len <= 0 || static_cast<std::size_t>(cn_len) >= sizeof cn) {
    return Status::PermissionDenied("the certificate has no usable common name");
  }
  auto id = ClientIdFromCommonName(std::string(cn, static_cast<std::size_t>(cn_len)));
  if (!id.ok()) return Status::PermissionDenied(id.status().message());
  PkeyPtr key(X509_get_pubkey(cert.get()));
  if (!key) return OpensslError("cannot read a certificate's key");
  return CertifiedClient{
      *id,
      VerifyingKey(std::make_shared<const VerifyingKey::Impl>(VerifyingKey::Impl{std::move(key)}))};
}

}  // namespace fedml::core::security
