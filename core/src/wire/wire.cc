// The wire codec (fedml/core/wire.h): Protobuf framing of Message, every field validated on
// decode. Why one file of this size: encode and decode of each field sit side by side so that a
// change to one is seen next to the other, and the hot path stays in one translation unit.
#include "fedml/core/wire.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>
#include <unordered_set>
#include <utility>

#include "fedml.pb.h"

namespace fedml::core {
namespace {

constexpr std::uint8_t kMagic[4] = {'F', 'M', 'L', 'W'};
constexpr std::size_t kPreambleBytes = 8;  // magic + u32 version
constexpr std::size_t kLengthBytes = 4;    // u32 chunk length
// Encoded chunks stay below Protobuf's 2 GiB message limit, so every chunk is also a valid
// Protobuf message for generic tools (and for our own fallback parser).
constexpr std::size_t kMaxEncodeChunkBytes = (std::size_t{1} << 31) - 64;

constexpr std::uint32_t kWireFloat32 = static_cast<std::uint32_t>(DType::kFloat32);
constexpr std::uint32_t kWireFloat64 = static_cast<std::uint32_t>(DType::kFloat64);

// Protobuf tags of the two fields a data chunk uses: WireChunk.data (2, length-delimited),
// TensorData.seq (1, varint) and TensorData.data (2, length-delimited).
constexpr std::uint8_t kTagChunkData = 0x12;
constexpr std::uint8_t kTagSeq = 0x08;
constexpr std::uint8_t kTagBytes = 0x12;

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr bool kLittleEndian = true;
#else
constexpr bool kLittleEndian = false;  // the portable byte-by-byte paths are used
#endif

std::string U64(std::uint64_t v) { return std::to_string(v); }

std::string ShapeString(const google::protobuf::RepeatedField<std::int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

std::string WireDTypeName(std::uint32_t raw) {
  return IsValidDType(raw) ? DTypeName(static_cast<DType>(raw)) : "unknown(" + U64(raw) + ")";
}

// ---- varint primitives (little-endian integers: fedml/core/bytes.h) ---------------------------

std::size_t VarintSize(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

std::size_t PutVarint(std::uint8_t* p, std::uint64_t v) {
  std::size_t n = 0;
  while (v >= 0x80) {
    p[n++] = static_cast<std::uint8_t>(v | 0x80);
    v >>= 7;
  }
  p[n++] = static_cast<std::uint8_t>(v);
  return n;
}

// Reads a varint at p[*pos] without passing p[size]. Ten bytes at most, and the tenth may only
// hold the 64th bit; anything else is left to Protobuf's own parser to judge.
bool ReadVarint(const std::uint8_t* p, std::size_t size, std::size_t* pos, std::uint64_t* out) {
  std::uint64_t v = 0;
  for (int i = 0; i < 10; ++i) {
    if (*pos >= size) return false;
    const std::uint8_t b = p[(*pos)++];
    if (i == 9 && b > 1) return false;
    v |= static_cast<std::uint64_t>(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

bool CheckedMul(std::uint64_t a, std::uint64_t b, std::uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

bool CheckedAdd(std::uint64_t a, std::uint64_t b, std::uint64_t* out) {
  if (b > std::numeric_limits<std::uint64_t>::max() - a) return false;
  *out = a + b;
  return true;
}

// Strict UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF). Protobuf refuses to
// parse proto3 `string` fields that fail this, so the encoder checks first rather than emitting
// a frame no decoder accepts.
bool IsValidUtf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

// ---- encoding ---------------------------------------------------------------------------------

// The data stream is the flat buffers of the main model and of each extra, back to back.
struct Segment {
  const float* values;
  std::size_t numel;
};

struct EncodePlan {
  std::string header_chunk;  // serialized WireChunk holding the header
  std::vector<Segment> segments;
  std::uint64_t data_bytes = 0;
  std::size_t chunk_bytes = 0;
  std::uint64_t num_data_chunks() const {
    return data_bytes == 0 ? 0 : (data_bytes - 1) / chunk_bytes + 1;
  }
};

Status CheckText(const std::string& s, const std::string& what) {
  if (IsValidUtf8(s)) return Status::Ok();
  return Status::InvalidArgument(what +
                                 " is not valid UTF-8; the wire carries names, keys and "
                                 "attrs as text (put binary data in Message::blob)");
}

Status AddSpecs(const ModelState& state, std::uint32_t group, const std::string& what,
                wire::Header* h) {
  for (const TensorSpec& s : state.specs()) {
    FEDML_RETURN_IF_ERROR(CheckText(s.name, "tensor name '" + s.name + "' in " + what));
    wire::TensorSpec* t = h->add_tensors();
    t->set_name(s.name);
    t->set_dtype(kWireFloat32);
    t->set_original_dtype(static_cast<std::uint32_t>(s.dtype));
    t->mutable_shape()->Add(s.shape.begin(), s.shape.end());
    t->set_group(group);
  }
  return Status::Ok();
}

Result<EncodePlan> Plan(const Message& m, const EncodeOptions& options) {
  if (options.chunk_bytes == 0 || options.chunk_bytes > kMaxEncodeChunkBytes) {
    return Status::InvalidArgument("EncodeOptions::chunk_bytes is " + U64(options.chunk_bytes) +
                                   "; it must be between 1 and " + U64(kMaxEncodeChunkBytes));
  }
  const auto type = static_cast<std::uint32_t>(m.type);
  if (type == 0 || type > kMaxMessageType) {
    return Status::InvalidArgument("cannot encode message type " + U64(type) +
                                   "; valid types are 1.." + U64(kMaxMessageType));
  }
  EncodePlan plan;
  plan.chunk_bytes = options.chunk_bytes;

  wire::WireChunk chunk;
  wire::Header* h = chunk.mutable_header();
  h->set_wire_version(kWireVersion);
  h->set_type(type);
  h->set_sender(m.sender);
  h->set_receiver(m.receiver);
  h->set_round(m.round);
  h->set_model_version(m.model_version);
  h->mutable_client_ids()->Add(m.client_ids.begin(), m.client_ids.end());
  h->set_num_samples(m.num_samples);
  for (const auto& [k, v] : m.metrics) {
    FEDML_RETURN_IF_ERROR(CheckText(k, "metric name '" + k + "'"));
    (*h->mutable_metrics())[k] = v;
  }
  for (const auto& [k, v] : m.attrs) {
    FEDML_RETURN_IF_ERROR(CheckText(k, "attr key '" + k + "'"));
    FEDML_RETURN_IF_ERROR(CheckText(v, "value of attr '" + k + "'"));
    (*h->mutable_attrs())[k] = v;
  }
  h->set_blob(m.blob);

  FEDML_RETURN_IF_ERROR(AddSpecs(m.model, 0, "the main model", h));
  plan.segments.push_back({m.model.data(), m.model.numel()});
  plan.data_bytes = std::uint64_t{m.model.numel()} * sizeof(float);
  std::uint32_t group = 0;
  for (const auto& [name, state] : m.extras) {
    FEDML_RETURN_IF_ERROR(CheckText(name, "extra name '" + name + "'"));
    h->add_extra_names(name);
    FEDML_RETURN_IF_ERROR(AddSpecs(state, ++group, "extra '" + name + "'", h));
    plan.segments.push_back({state.data(), state.numel()});
    plan.data_bytes += std::uint64_t{state.numel()} * sizeof(float);
  }
  h->set_total_data_bytes(plan.data_bytes);

  const std::size_t header_bytes = chunk.ByteSizeLong();
  if (header_bytes > kMaxEncodeChunkBytes) {
    return Status::InvalidArgument("header chunk would be " + U64(header_bytes) +
                                   " bytes, more than the " + U64(kMaxEncodeChunkBytes) +
                                   " a chunk may hold; carry large payloads as tensors");
  }
  // Deterministic, so that equal messages give equal frames (protocols hash and sign frames).
  {
    google::protobuf::io::StringOutputStream sos(&plan.header_chunk);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    if (!chunk.SerializeToCodedStream(&cos)) {
      return Status::Internal("serializing the wire header failed");
    }
  }
  return plan;
}

// The Protobuf prefix of data chunk `seq` carrying `n` bytes: WireChunk{data: TensorData{seq,
// data}} written by hand so the tensor bytes are appended straight from the model's buffer.
std::size_t DataChunkPrefix(std::uint64_t seq, std::uint64_t n, std::uint8_t* out,
                            std::uint64_t* chunk_len) {
  const std::uint64_t inner = (seq ? 1 + VarintSize(seq) : 0) + (n ? 1 + VarintSize(n) + n : 0);
  *chunk_len = 1 + VarintSize(inner) + inner;
  std::size_t k = 0;
  out[k++] = kTagChunkData;
  k += PutVarint(out + k, inner);
  if (seq) {
    out[k++] = kTagSeq;
    k += PutVarint(out + k, seq);
  }
  if (n) {
    out[k++] = kTagBytes;
    k += PutVarint(out + k, n);
  }
  return k;
}
constexpr std::size_t kMaxDataPrefix = 1 + 10 + 1 + 10 + 1 + 10;

void AppendBytes(const std::uint8_t* p, std::size_t n, Bytes* out) {
  out->insert(out->end(), p, p + n);
}
void AppendBytes(const std::uint8_t* p, std::size_t n, std::string* out) {
  out->append(reinterpret_cast<const char*>(p), n);
}

// Appends bytes [offset, offset + n) of the data stream, as little-endian float32.
template <class Out>
void AppendStream(const std::vector<Segment>& segments, std::uint64_t offset, std::uint64_t n,
                  Out* out) {
  for (const Segment& s : segments) {
    const std::uint64_t seg_bytes = std::uint64_t{s.numel} * sizeof(float);
    if (offset >= seg_bytes) {
      offset -= seg_bytes;
      continue;
    }
    const std::uint64_t take = std::min(n, seg_bytes - offset);
    const auto* src = reinterpret_cast<const std::uint8_t*>(s.values) + offset;
    if (kLittleEndian) {
      AppendBytes(src, static_cast<std::size_t>(take), out);
    } else {
      for (std::uint64_t b = offset; b < offset + take; ++b) {
        std::uint32_t bits;
        std::memcpy(&bits, s.values + b / 4, 4);
        out->push_back(static_cast<std::uint8_t>(bits >> (8 * (b % 4))));
      }
    }
    n -= take;
    offset = 0;
    if (n == 0) return;
  }
}

// ---- decoding ---------------------------------------------------------------------------------

// Parses the exact layout the encoder writes for a data chunk without copying the payload.
// Anything else (other field order, unknown fields, a header) returns false and goes through
// Protobuf's parser, so both paths agree on every input this one accepts.
bool ParseCanonicalData(const std::uint8_t* p, std::size_t n, std::uint64_t* seq,
                        const std::uint8_t** data, std::size_t* len) {
  if (n < 2 || p[0] != kTagChunkData) return false;
  std::size_t pos = 1;
  std::uint64_t inner;
  if (!ReadVarint(p, n, &pos, &inner) || inner != n - pos) return false;
  *seq = 0;
  *data = p + pos;
  *len = 0;
  if (pos < n && p[pos] == kTagSeq) {
    ++pos;
    if (!ReadVarint(p, n, &pos, seq)) return false;
  }
  if (pos == n) return true;
  if (p[pos] != kTagBytes) return false;
  ++pos;
  std::uint64_t bytes;
  if (!ReadVarint(p, n, &pos, &bytes) || bytes != n - pos) return false;
  *data = p + pos;
  *len = static_cast<std::size_t>(bytes);
  return true;
}

float NarrowToFloat(double d) {
  // Out-of-range double -> float conversion is undefined in C++; saturate to infinity as IEEE
  // does, so a finite check (if requested) reports it.
  if (d > static_cast<double>(FLT_MAX)) return std::numeric_limits<float>::infinity();
  if (d < -static_cast<double>(FLT_MAX)) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(d);
}

// Branch-free over the exponent bits so the compiler vectorizes it; the slower
// ModelState::CheckFinite runs only to name the culprit once this fails.
bool AllFinite(const ModelState& state) {
  const float* p = state.data();
  const std::size_t n = state.numel();
  constexpr std::uint32_t kExp = 0x7f800000u;
  constexpr std::size_t kBlock = 4096;
  for (std::size_t start = 0; start < n; start += kBlock) {
    const std::size_t end = std::min(n, start + kBlock);
    std::uint32_t bad = 0;
    for (std::size_t i = start; i < end; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, p + i, 4);
      bad |= static_cast<std::uint32_t>((bits & kExp) == kExp);
    }
    if (bad) return false;
  }
  return true;
}

// Counts, without parsing, what a WireChunk's header would make Protobuf allocate, and refuses a
// count or size over `limits` (RESOURCE_EXHAUSTED naming the limit). Header fields may come in
// several pieces (Protobuf merges them), so every piece is counted. A malformed encoding is left
// to ParseFromArray to report.
Status CheckHeaderCounts(const std::uint8_t* p, std::size_t n, const DecodeLimits& limits) {
  using WFL = google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(p, static_cast<int>(n));
  std::uint64_t header_bytes = 0, metrics = 0, attrs = 0, extras = 0, tensors = 0;
  for (std::uint32_t tag; (tag = in.ReadTag()) != 0;) {
    if (WFL::GetTagFieldNumber(tag) != 1 ||
        WFL::GetTagWireType(tag) != WFL::WIRETYPE_LENGTH_DELIMITED) {
      if (!WFL::SkipField(&in, tag)) return Status::Ok();
      continue;
    }
    std::uint32_t len;
    if (!in.ReadVarint32(&len) || len > static_cast<std::uint32_t>(INT_MAX)) return Status::Ok();
    const auto limit = in.PushLimit(static_cast<int>(len));
    for (;;) {
      const int before = in.CurrentPosition();
      const std::uint32_t t = in.ReadTag();
      if (t == 0) break;
      if (!WFL::SkipField(&in, t)) return Status::Ok();
      const int field = WFL::GetTagFieldNumber(t);
      if (field == 11) continue;  // the blob
      header_bytes += static_cast<std::uint64_t>(in.CurrentPosition() - before);
      metrics += field == 9;
      attrs += field == 10;
      extras += field == 12;
      tensors += field == 13;
    }
    if (in.BytesUntilLimit() != 0) return Status::Ok();  // malformed: the parser says so
    in.PopLimit(limit);
  }
  const auto over = [](const char* what, std::uint64_t n, const char* limit, std::uint64_t max) {
    return Status::ResourceExhausted("the header holds " + U64(n) + " " + what + ", more than " +
                                     limit + " (" + U64(max) + ")");
  };
  if (header_bytes > limits.max_header_bytes) {
    return over("bytes besides its blob", header_bytes, "max_header_bytes",
                limits.max_header_bytes);
  }
  if (metrics > limits.max_metrics)
    return over("metrics", metrics, "max_metrics", limits.max_metrics);
  if (attrs > limits.max_attrs) return over("attrs", attrs, "max_attrs", limits.max_attrs);
  if (extras > limits.max_extras) return over("extras", extras, "max_extras", limits.max_extras);
  if (tensors > limits.max_total_tensors) {
    return over("tensors", tensors, "max_total_tensors", limits.max_total_tensors);
  }
  return Status::Ok();
}

// Shared by Decode and ChunkAssembler: validates the header, then scatters the data stream into
// the model states as it arrives.
class Assembly {
 public:
  // `data_bound`: the most data bytes that can still arrive (the rest of a whole frame), so that
  // a header cannot make us allocate more than the input could ever fill.
  Assembly(const DecodeLimits& limits, std::uint64_t data_bound)
      : limits_(limits), data_bound_(data_bound) {}

  Status AddChunk(const std::uint8_t* p, std::size_t n) {
    const std::size_t index = chunk_index_++;
    if (n > limits_.max_chunk_bytes) {
      return Status::ResourceExhausted("chunk " + U64(index) + " is " + U64(n) +
                                       " bytes, more than max_chunk_bytes (" +
                                       U64(limits_.max_chunk_bytes) + ")");
    }
    std::uint64_t seq;
    const std::uint8_t* data;
    std::size_t len;
    if (ParseCanonicalData(p, n, &seq, &data, &len)) return OnData(index, seq, data, len);
    if (n > static_cast<std::size_t>(INT_MAX)) {
      return Status::InvalidArgument("chunk " + U64(index) + " is " + U64(n) +
                                     " bytes but not a plain data chunk; other chunks must fit "
                                     "Protobuf's 2 GiB message limit");
    }
    FEDML_RETURN_IF_ERROR(CheckHeaderCounts(p, n, limits_));
    wire::WireChunk chunk;
    if (!chunk.ParseFromArray(p, static_cast<int>(n))) {
      return Status::InvalidArgument("chunk " + U64(index) + " (" + U64(n) +
                                     " bytes) is not a valid WireChunk Protobuf message");
    }
    switch (chunk.chunk_case()) {
      case wire::WireChunk::kHeader:
        if (have_header_) {
          return Status::InvalidArgument("chunk " + U64(index) +
                                         " is a second header; a frame has exactly one header, "
                                         "as its first chunk");
        }
        return OnHeader(chunk.mutable_header());
      case wire::WireChunk::kData: {
        const std::string& d = chunk.data().data();
        return OnData(index, chunk.data().seq(), reinterpret_cast<const std::uint8_t*>(d.data()),
                      d.size());
      }
      case wire::WireChunk::CHUNK_NOT_SET:
        break;
    }
    return Status::InvalidArgument("chunk " + U64(index) +
                                   " holds neither a header nor tensor data");
  }

  bool complete() const { return have_header_ && received_ == total_; }

  Result<Message> Finish() {
    if (!have_header_) {
      return Status::InvalidArgument("no header chunk: the stream ended before its header");
    }
    if (received_ != total_) {
      return Status::InvalidArgument("truncated: received " + U64(received_) + " of the " +
                                     U64(total_) + " tensor data bytes the header announced");
    }
    if (limits_.require_finite) {
      if (!AllFinite(msg_.model)) {
        FEDML_RETURN_IF_ERROR(msg_.model.CheckFinite().WithContext("main model"));
      }
      for (const auto& [name, state] : msg_.extras) {
        if (!AllFinite(state)) {
          FEDML_RETURN_IF_ERROR(state.CheckFinite().WithContext("extra '" + name + "'"));
        }
      }
    }
    return std::move(msg_);
  }

 private:
  struct Target {
    std::uint32_t group;
    std::size_t index;  // within its group's model state
    float* dst = nullptr;
    std::uint32_t elem_bytes;  // on the wire
    std::uint64_t bytes;       // on the wire
  };

  std::string GroupName(std::uint32_t g, const wire::Header& h) const {
    return g == 0 ? std::string("the main model") : "extra '" + h.extra_names(g - 1) + "'";
  }

  Status OnHeader(wire::Header* h) {
    if (h->wire_version() != kWireVersion) {
      return Status::InvalidArgument("header has wire version " + U64(h->wire_version()) +
                                     "; this build reads version " + U64(kWireVersion) + " only");
    }
    if (h->type() == 0 || h->type() > kMaxMessageType) {
      return Status::InvalidArgument("unknown message type " + U64(h->type()) +
                                     "; valid types are 1.." + U64(kMaxMessageType));
    }
    const std::size_t num_groups = static_cast<std::size_t>(h->extra_names_size()) + 1;
    {
      std::set<std::string> seen;
      for (const std::string& name : h->extra_names()) {
        if (!seen.insert(name).second) {
          return Status::InvalidArgument("duplicate extra name '" + name +
                                         "'; extra names must be unique");
        }
      }
    }

    // Validate every spec and size the data before allocating anything.
    std::vector<std::uint64_t> tensors_in(num_groups, 0);
    std::vector<std::unordered_set<std::string>> names(num_groups);
    std::uint64_t total = 0;
    targets_.reserve(static_cast<std::size_t>(h->tensors_size()));
    for (int i = 0; i < h->tensors_size(); ++i) {
      const wire::TensorSpec& t = h->tensors(i);
      if (t.group() >= num_groups) {
        return Status::InvalidArgument("tensor " + U64(i) + " ('" + t.name() + "') is in group " +
                                       U64(t.group()) + " but the header declares only " +
                                       U64(num_groups - 1) + " extras");
      }
      const std::uint32_t g = t.group();
      if (++tensors_in[g] > limits_.max_tensors) {
        return Status::ResourceExhausted(GroupName(g, *h) + " has more than max_tensors (" +
                                         U64(limits_.max_tensors) + ") tensors");
      }
      if (t.name().empty()) {
        return Status::InvalidArgument("tensor " + U64(i) + " in " + GroupName(g, *h) +
                                       " has an empty name");
      }
      if (!names[g].insert(t.name()).second) {
        return Status::InvalidArgument("duplicate tensor name '" + t.name() + "' in " +
                                       GroupName(g, *h) + "; tensor names must be unique");
      }
      if (t.dtype() != kWireFloat32 && t.dtype() != kWireFloat64) {
        return Status::InvalidArgument("tensor '" + t.name() + "' has wire dtype " +
                                       WireDTypeName(t.dtype()) +
                                       "; only float32 and float64 are accepted on the wire");
      }
      if (!IsValidDType(t.original_dtype())) {
        return Status::InvalidArgument("tensor '" + t.name() + "' has unknown original dtype " +
                                       U64(t.original_dtype()) +
                                       "; valid dtypes are 1 (float32) "
                                       ".. 10 (bool)");
      }
      bool has_zero = false;
      for (int a = 0; a < t.shape_size(); ++a) {
        if (t.shape(a) < 0) {
          return Status::InvalidArgument("tensor '" + t.name() + "' has negative dimension " +
                                         std::to_string(t.shape(a)) + " at axis " + U64(a) +
                                         " of shape " + ShapeString(t.shape()));
        }
        has_zero = has_zero || t.shape(a) == 0;
      }
      std::uint64_t numel = 1;
      if (has_zero) {
        numel = 0;
      } else {
        for (std::int64_t d : t.shape()) {
          if (!CheckedMul(numel, static_cast<std::uint64_t>(d), &numel)) {
            return Status::InvalidArgument("tensor '" + t.name() + "': element count of shape " +
                                           ShapeString(t.shape()) + " overflows 64 bits");
          }
        }
      }
      const std::uint32_t elem = t.dtype() == kWireFloat32 ? 4 : 8;
      std::uint64_t bytes;
      if (!CheckedMul(numel, elem, &bytes) || !CheckedAdd(total, bytes, &total)) {
        return Status::InvalidArgument("tensor '" + t.name() + "' of shape " +
                                       ShapeString(t.shape()) +
                                       ": the data byte count overflows 64 bits");
      }
      targets_.push_back(
          Target{g, static_cast<std::size_t>(tensors_in[g] - 1), nullptr, elem, bytes});
    }
    if (total != h->total_data_bytes()) {
      return Status::InvalidArgument("header announces " + U64(h->total_data_bytes()) +
                                     " tensor data bytes but its tensor specs describe " +
                                     U64(total) + " bytes");
    }
    if (total > limits_.max_frame_bytes) {
      return Status::ResourceExhausted("header announces " + U64(total) +
                                       " tensor data bytes, more than max_frame_bytes (" +
                                       U64(limits_.max_frame_bytes) + ")");
    }
    if (total > data_bound_) {
      return Status::InvalidArgument("truncated frame: header announces " + U64(total) +
                                     " tensor data bytes but only " + U64(data_bound_) +
                                     " bytes follow it");
    }

    msg_.type = static_cast<MessageType>(h->type());
    msg_.sender = h->sender();
    msg_.receiver = h->receiver();
    msg_.round = h->round();
    msg_.model_version = h->model_version();
    msg_.client_ids.assign(h->client_ids().begin(), h->client_ids().end());
    msg_.num_samples = h->num_samples();
    msg_.metrics.insert(h->metrics().begin(), h->metrics().end());
    msg_.attrs.insert(h->attrs().begin(), h->attrs().end());
    msg_.blob = std::move(*h->mutable_blob());

    // Build each state in one step: AddZeros per tensor would be quadratic in the tensor count,
    // which a hostile header could exploit.
    std::vector<std::vector<TensorSpec>> specs(num_groups);
    for (int i = 0; i < h->tensors_size(); ++i) {
      wire::TensorSpec* t = h->mutable_tensors(i);
      specs[t->group()].push_back(TensorSpec{std::move(*t->mutable_name()),
                                             static_cast<DType>(t->original_dtype()),
                                             {t->shape().begin(), t->shape().end()},
                                             0});
    }
    std::vector<ModelState*> groups{&msg_.model};
    for (const std::string& name : h->extra_names()) groups.push_back(&msg_.extras[name]);
    for (std::size_t g = 0; g < num_groups; ++g) {
      auto state = ModelState::ZerosFromSpecs(std::move(specs[g]));
      if (!state.ok()) return state.status();  // not expected: the specs were checked above
      *groups[g] = std::move(state).value();
    }
    for (Target& t : targets_) {
      ModelState& s = *groups[t.group];
      t.dst = s.data() + s.specs()[t.index].offset;
    }
    total_ = total;
    have_header_ = true;
    return Status::Ok();
  }

  Status OnData(std::size_t index, std::uint64_t seq, const std::uint8_t* p, std::size_t n) {
    if (!have_header_) {
      return Status::InvalidArgument("chunk " + U64(index) +
                                     " is tensor data before the header chunk; the header must "
                                     "come first");
    }
    if (seq != next_seq_) {
      return Status::InvalidArgument("data chunk out of order: chunk " + U64(index) +
                                     " has sequence number " + U64(seq) + ", expected " +
                                     U64(next_seq_));
    }
    ++next_seq_;
    if (received_ == total_ || n > total_ - received_) {
      return Status::InvalidArgument("extra bytes after the data: chunk " + U64(index) +
                                     " brings " + U64(n) + " bytes but only " +
                                     U64(total_ - received_) + " of the " + U64(total_) +
                                     " announced tensor data bytes remain");
    }
    Scatter(p, n);
    received_ += n;
    return Status::Ok();
  }

  // Copies n data-stream bytes into the tensors; the caller checked they fit.
  void Scatter(const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      while (targets_[cur_].bytes == cur_bytes_) {  // finished (or empty) tensors
        ++cur_;
        cur_bytes_ = 0;
      }
      Target& t = targets_[cur_];
      const std::size_t take =
          static_cast<std::size_t>(std::min<std::uint64_t>(n, t.bytes - cur_bytes_));
      if (t.elem_bytes == 4 && kLittleEndian) {
        std::memcpy(reinterpret_cast<std::uint8_t*>(t.dst) + cur_bytes_, p, take);
        cur_bytes_ += take;
      } else {
        ScatterConverted(t, p, take);
      }
      p += take;
      n -= take;
    }
  }

  // Element-wise path (float64 on the wire, or a big-endian host). An element split across
  // chunks is gathered in carry_.
  void ScatterConverted(const Target& t, const std::uint8_t* p, std::size_t n) {
    const std::uint32_t eb = t.elem_bytes;
    while (n > 0) {
      const std::size_t within = static_cast<std::size_t>(cur_bytes_ % eb);
      const std::uint8_t* elem = p;
      std::size_t used = eb;
      if (within != 0 || n < eb) {
        used = std::min<std::size_t>(eb - within, n);
        std::memcpy(carry_ + within, p, used);
        elem = (within + used == eb) ? carry_ : nullptr;
      }
      cur_bytes_ += used;
      p += used;
      n -= used;
      if (elem == nullptr) continue;
      float& out = t.dst[cur_bytes_ / eb - 1];
      if (eb == 4) {
        const std::uint32_t bits = LoadLe32(elem);
        std::memcpy(&out, &bits, 4);
      } else {
        const std::uint64_t bits = LoadLe64(elem);
        double d;
        std::memcpy(&d, &bits, 8);
        out = NarrowToFloat(d);
      }
    }
  }

  DecodeLimits limits_;
  std::uint64_t data_bound_;
  std::size_t chunk_index_ = 0;
  bool have_header_ = false;
  Message msg_;
  std::vector<Target> targets_;
  std::size_t cur_ = 0;          // tensor the next data byte belongs to
  std::uint64_t cur_bytes_ = 0;  // bytes of it already received
  std::uint8_t carry_[8] = {};   // a partially received element
  std::uint64_t total_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t next_seq_ = 0;
};

}  // namespace

Result<Bytes> Encode(const Message& message, const EncodeOptions& options) {
  FEDML_ASSIGN_OR_RETURN(EncodePlan plan, Plan(message, options));
  const std::uint64_t chunks = plan.num_data_chunks();
  Bytes out;
  // One exact reservation: no reallocation while the model bytes are appended.
  out.reserve(kPreambleBytes + kLengthBytes + plan.header_chunk.size() +
              chunks * (kLengthBytes + kMaxDataPrefix) + plan.data_bytes);
  std::uint8_t tmp[kLengthBytes + kMaxDataPrefix];
  out.insert(out.end(), kMagic, kMagic + 4);
  StoreLe32(tmp, kWireVersion);
  out.insert(out.end(), tmp, tmp + 4);
  StoreLe32(tmp, static_cast<std::uint32_t>(plan.header_chunk.size()));
  out.insert(out.end(), tmp, tmp + 4);
  out.insert(out.end(), plan.header_chunk.begin(), plan.header_chunk.end());
  for (std::uint64_t c = 0; c < chunks; ++c) {
    const std::uint64_t offset = c * plan.chunk_bytes;
    const std::uint64_t n = std::min<std::uint64_t>(plan.chunk_bytes, plan.data_bytes - offset);
    std::uint64_t chunk_len;
    const std::size_t k = DataChunkPrefix(c, n, tmp + kLengthBytes, &chunk_len);
    StoreLe32(tmp, static_cast<std::uint32_t>(chunk_len));
    out.insert(out.end(), tmp, tmp + kLengthBytes + k);
    AppendStream(plan.segments, offset, n, &out);
  }
  return out;
}

Result<std::vector<std::string>> EncodeChunks(const Message& message,
                                              const EncodeOptions& options) {
  FEDML_ASSIGN_OR_RETURN(EncodePlan plan, Plan(message, options));
  const std::uint64_t chunks = plan.num_data_chunks();
  std::vector<std::string> out;
  out.reserve(static_cast<std::size_t>(chunks) + 1);
  out.push_back(std::move(plan.header_chunk));
  std::uint8_t prefix[kMaxDataPrefix];
  for (std::uint64_t c = 0; c < chunks; ++c) {
    const std::uint64_t offset = c * plan.chunk_bytes;
    const std::uint64_t n = std::min<std::uint64_t>(plan.chunk_bytes, plan.data_bytes - offset);
    std::uint64_t chunk_len;
    const std::size_t k = DataChunkPrefix(c, n, prefix, &chunk_len);
    std::string& chunk = out.emplace_back();
    chunk.reserve(static_cast<std::size_t>(chunk_len));
    chunk.append(reinterpret_cast<const char*>(prefix), k);
    AppendStream(plan.segments, offset, n, &chunk);
  }
  return out;
}

Result<Message> Decode(const std::uint8_t* data, std::size_t size, const DecodeLimits& limits) {
  if (data == nullptr && size > 0) return Status::InvalidArgument("frame pointer is null");
  if (size > limits.max_frame_bytes) {
    return Status::ResourceExhausted("frame of " + U64(size) +
                                     " bytes is larger than max_frame_bytes (" +
                                     U64(limits.max_frame_bytes) + ")");
  }
  if (size < kPreambleBytes) {
    return Status::InvalidArgument("truncated frame: " + U64(size) +
                                   " bytes, shorter than the 8-byte preamble (magic \"FMLW\" "
                                   "and version)");
  }
  if (std::memcmp(data, kMagic, 4) != 0) {
    return Status::InvalidArgument("bad magic 0x" + HexEncode(data, 4) +
                                   ": not a fedml wire frame (expected \"FMLW\")");
  }
  const std::uint32_t version = LoadLe32(data + 4);
  if (version != kWireVersion) {
    return Status::InvalidArgument("unsupported wire version " + U64(version) +
                                   "; this build reads version " + U64(kWireVersion) + " only");
  }
  Assembly assembly(limits, size - kPreambleBytes);
  std::size_t pos = kPreambleBytes;
  for (std::size_t index = 0; pos < size; ++index) {
    if (size - pos < kLengthBytes) {
      return Status::InvalidArgument("truncated frame: " + U64(size - pos) +
                                     " trailing bytes at offset " + U64(pos) +
                                     ", too few for a chunk length");
    }
    const std::uint32_t len = LoadLe32(data + pos);
    pos += kLengthBytes;
    if (len > limits.max_chunk_bytes) {
      return Status::ResourceExhausted(
          "chunk " + U64(index) + " at offset " + U64(pos - kLengthBytes) + " is " + U64(len) +
          " bytes, more than max_chunk_bytes (" + U64(limits.max_chunk_bytes) + ")");
    }
    if (len > size - pos) {
      return Status::InvalidArgument("truncated frame: chunk " + U64(index) + " at offset " +
                                     U64(pos - kLengthBytes) + " has length " + U64(len) +
                                     ", past the end of the frame (" + U64(size - pos) +
                                     " bytes left)");
    }
    FEDML_RETURN_IF_ERROR(assembly.AddChunk(data + pos, len));
    pos += len;
  }
  return assembly.Finish();
}

struct ChunkAssembler::Impl {
  explicit Impl(const DecodeLimits& l)
      : limits(l), assembly(l, std::numeric_limits<std::uint64_t>::max()) {}
  DecodeLimits limits;
  Assembly assembly;
  Status error;
  std::uint64_t bytes = 0;
  bool finished = false;
};

ChunkAssembler::ChunkAssembler(DecodeLimits limits) : impl_(new Impl(limits)) {}
ChunkAssembler::~ChunkAssembler() { delete impl_; }

Status ChunkAssembler::Add(const std::uint8_t* data, std::size_t size) {
  Impl& s = *impl_;
  if (!s.error.ok()) return s.error;
  if (s.finished) {
    return Status::FailedPrecondition("ChunkAssembler::Add after Finish; use a new assembler");
  }
  if (data == nullptr && size > 0) {
    s.error = Status::InvalidArgument("chunk pointer is null");
  } else if (size > s.limits.max_frame_bytes - std::min(s.bytes, s.limits.max_frame_bytes)) {
    s.error = Status::ResourceExhausted("streamed chunks exceed max_frame_bytes (" +
                                        U64(s.limits.max_frame_bytes) + "): " + U64(s.bytes) +
                                        " bytes received, the next chunk is " + U64(size));
  } else {
    s.bytes += size;
    s.error = s.assembly.AddChunk(data, size);
  }
  return s.error;
}

bool ChunkAssembler::complete() const {
  return impl_->error.ok() && !impl_->finished && impl_->assembly.complete();
}

Result<Message> ChunkAssembler::Finish() {
  Impl& s = *impl_;
  if (!s.error.ok()) return s.error;
  if (s.finished) {
    return Status::FailedPrecondition("ChunkAssembler::Finish called twice; use a new assembler");
  }
  s.finished = true;
  return s.assembly.Finish();
}

}  // namespace fedml::core
