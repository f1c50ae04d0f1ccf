#include "fedml/core/bytes.h"

namespace fedml::core {
namespace {

std::string Str(std::size_t v) { return std::to_string(v); }

constexpr char kHexDigits[] = "0123456789abcdef";

// The value of hex digit c, or -1 when `digits` does not accept c.
int HexValue(char c, HexCase digits) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (digits == HexCase::kAnyCase && c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void AppendHex(const std::uint8_t* p, std::size_t n, std::string* out) {
  const std::size_t at = out->size();
  out->resize(at + 2 * n);
  char* q = out->data() + at;
  for (std::size_t i = 0; i < n; ++i) {
    *q++ = kHexDigits[p[i] >> 4];
    *q++ = kHexDigits[p[i] & 0xf];
  }
}

std::string HexEncode(const std::uint8_t* p, std::size_t n) {
  std::string out;
  AppendHex(p, n, &out);
  return out;
}

Result<Bytes> HexDecode(std::string_view hex, HexCase digits) {
  if (hex.size() % 2 != 0) {
    return Status::InvalidArgument("hex string has odd length " + Str(hex.size()));
  }
  Bytes out(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); ++i) {
    const int v = HexValue(hex[i], digits);
    if (v < 0) {
      const auto c = static_cast<std::uint8_t>(hex[i]);
      std::string shown;
      if (c >= 0x20 && c < 0x7f) {
        shown = std::string("'") + hex[i] + "'";
      } else {
        shown = "byte 0x";
        AppendHex(&c, 1, &shown);
      }
      return Status::InvalidArgument(
          "hex string: " + shown + " at position " + Str(i) + " is not a hex digit (" +
          (digits == HexCase::kAnyCase ? "0-9, a-f, A-F" : "0-9, a-f") + ")");
    }
    out[i / 2] = static_cast<std::uint8_t>((out[i / 2] << 4) | v);
  }
  return out;
}

// Out of line: GCC 12 misreads a ranged insert after a reserve it can see as an overflow
// (-Wstringop-overflow).
ByteWriter& ByteWriter::Raw(const std::uint8_t* p, std::size_t n) {
  if (n > 0) out_.insert(out_.end(), p, p + n);
  return *this;
}

ByteWriter& ByteWriter::U32s(const std::uint32_t* words, std::size_t n) {
  const std::size_t at = out_.size();
  out_.resize(at + 4 * n);
  std::uint8_t* p = out_.data() + at;
  for (std::size_t i = 0; i < n; ++i, p += 4) StoreLe32(p, words[i]);
  return *this;
}

Status ByteReader::Error(std::string_view message) const {
  std::string m = what_;
  m += ": ";
  m += message;
  return Status::InvalidArgument(std::move(m));
}

Status ByteReader::Need(std::size_t n, std::string_view field) const {
  if (n <= remaining()) return Status::Ok();
  return Error("truncated in " + std::string(field) + " at byte " + Str(pos_) + ": it needs " +
               Str(n) + " bytes, " + Str(remaining()) + " are left");
}

Result<const std::uint8_t*> ByteReader::Raw(std::size_t n, std::string_view field) {
  FEDML_RETURN_IF_ERROR(Need(n, field));
  const std::uint8_t* p = data_ + pos_;
  pos_ += n;
  return p;
}

Result<std::uint8_t> ByteReader::U8(std::string_view field) {
  FEDML_ASSIGN_OR_RETURN(const std::uint8_t* p, Raw(1, field));
  return *p;
}

Result<std::uint32_t> ByteReader::U32(std::string_view field) {
  FEDML_ASSIGN_OR_RETURN(const std::uint8_t* p, Raw(4, field));
  return LoadLe32(p);
}

Result<std::uint64_t> ByteReader::U64(std::string_view field) {
  FEDML_ASSIGN_OR_RETURN(const std::uint8_t* p, Raw(8, field));
  return LoadLe64(p);
}

Result<double> ByteReader::F64(std::string_view field) {
  FEDML_ASSIGN_OR_RETURN(const std::uint64_t bits, U64(field));
  double v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

Status ByteReader::U32s(std::uint64_t n, std::vector<std::uint32_t>* out, std::string_view field) {
  // n * 4 may overflow; n > remaining / 4 may not.
  if (n > remaining() / 4) {
    return Error(std::string(field) + " count " + std::to_string(n) +
                 " does not fit in the remaining " + Str(remaining()) + " bytes (4 per word)");
  }
  const auto words = static_cast<std::size_t>(n);
  out->resize(words);
  const std::uint8_t* p = data_ + pos_;
  for (std::size_t i = 0; i < words; ++i, p += 4) (*out)[i] = LoadLe32(p);
  pos_ += 4 * words;
  return Status::Ok();
}

Status ByteReader::Magic(std::string_view magic) {
  FEDML_RETURN_IF_ERROR(Need(magic.size(), "the magic"));
  if (std::memcmp(data_ + pos_, magic.data(), magic.size()) != 0) {
    return Error("wrong magic: it does not start with \"" + std::string(magic) + "\"");
  }
  pos_ += magic.size();
  return Status::Ok();
}

Status ByteReader::BadVersion(std::uint32_t got, std::uint32_t want) const {
  return Status::InvalidArgument(what_ + " has format version " + std::to_string(got) +
                                 "; this build reads version " + std::to_string(want));
}

Status ByteReader::Version8(std::uint8_t want) {
  FEDML_ASSIGN_OR_RETURN(const std::uint8_t got, U8("the format version"));
  return got == want ? Status::Ok() : BadVersion(got, want);
}

Status ByteReader::Version32(std::uint32_t want) {
  FEDML_ASSIGN_OR_RETURN(const std::uint32_t got, U32("the format version"));
  return got == want ? Status::Ok() : BadVersion(got, want);
}

Result<std::uint32_t> ByteReader::Count(std::string_view field, std::size_t min_bytes) {
  FEDML_ASSIGN_OR_RETURN(const std::uint32_t n, U32(std::string(field) + " count"));
  // n * min_bytes > remaining, without the product's overflow.
  if (min_bytes != 0 && n > remaining() / min_bytes) {
    return Error(std::string(field) + " count " + std::to_string(n) +
                 " does not fit in the remaining " + Str(remaining()) + " bytes");
  }
  return n;
}

Result<std::uint32_t> ByteReader::Length(std::string_view field, std::size_t max_len) {
  FEDML_ASSIGN_OR_RETURN(const std::uint32_t n, U32(std::string(field) + "'s length"));
  if (n > max_len) {
    return Error(std::string(field) + " is " + std::to_string(n) + " bytes long; at most " +
                 Str(max_len) + " are allowed");
  }
  FEDML_RETURN_IF_ERROR(Need(n, field));
  return n;
}

Status ByteReader::Blob(Bytes* out, std::string_view field, std::size_t max_len) {
  FEDML_ASSIGN_OR_RETURN(const std::uint32_t n, Length(field, max_len));
  out->assign(data_ + pos_, data_ + pos_ + n);
  pos_ += n;
  return Status::Ok();
}

Result<std::string> ByteReader::String(std::string_view field, std::size_t max_len) {
  FEDML_ASSIGN_OR_RETURN(const std::uint32_t n, Length(field, max_len));
  std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
  pos_ += n;
  return s;
}

Status ByteReader::End(std::string_view after) const {
  if (remaining() == 0) return Status::Ok();
  return Error(Str(remaining()) + " trailing bytes after " + std::string(after));
}

}  // namespace fedml::core
