#include "fedml/core/wire.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "fedml.pb.h"

namespace {

using fedml::StatusCode;
using namespace fedml::core;

ModelState MakeState(const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& layout,
                     float start = 0.5f) {
  ModelState s;
  float v = start;
  for (const auto& [name, shape] : layout) {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    std::vector<float> values(n);
    for (float& x : values) x = (v += 0.25f);
    REQUIRE(s.Add(name, shape, values.data()).ok());
  }
  return s;
}

Message MakeMessage() {
  Message m;
  m.type = MessageType::kClientUpdate;
  m.sender = 3;
  m.receiver = 0;
  m.round = 17;
  m.model_version = 16;
  m.client_ids = {4, 8, 15};
  m.num_samples = 600;
  m.metrics = {{"train_loss", 0.25}, {"accuracy", 0.875}};
  m.attrs = {{"stage", "masked"}, {"note", ""}};
  m.blob = std::string("\x00\x01\xff binary", 10);
  m.model = MakeState({{"conv.weight", {4, 1, 3, 3}}, {"conv.bias", {4}}, {"fc.weight", {10, 36}}});
  m.extras["control"] = MakeState({{"conv.weight", {4, 1, 3, 3}}}, -3.0f);
  m.extras["empty"] = ModelState();
  return m;
}

void RequireSame(const Message& a, const Message& b) {
  CHECK(a.type == b.type);
  CHECK(a.sender == b.sender);
  CHECK(a.receiver == b.receiver);
  CHECK(a.round == b.round);
  CHECK(a.model_version == b.model_version);
  CHECK(a.client_ids == b.client_ids);
  CHECK(a.num_samples == b.num_samples);
  CHECK(a.metrics == b.metrics);
  CHECK(a.attrs == b.attrs);
  CHECK(a.blob == b.blob);
  CHECK(a.model == b.model);
  REQUIRE(a.extras.size() == b.extras.size());
  for (const auto& [name, state] : a.extras) {
    REQUIRE(b.extras.count(name) == 1);
    CHECK(state == b.extras.at(name));
  }
}

Message RoundTrip(const Message& m, std::size_t chunk_bytes = std::size_t{64} << 20) {
  EncodeOptions opts;
  opts.chunk_bytes = chunk_bytes;
  auto frame = Encode(m, opts);
  REQUIRE(frame.ok());
  auto back = Decode(*frame);
  INFO(back.status().ToString());
  REQUIRE(back.ok());
  return std::move(back).value();
}

// ---- hand-built frames for the malformed cases ------------------------------------------------

void PutU32(Bytes* out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

Bytes Frame(const std::vector<std::string>& chunks, const char* magic = "FMLW",
            std::uint32_t version = kWireVersion) {
  Bytes out(magic, magic + 4);
  PutU32(&out, version);
  for (const std::string& c : chunks) {
    PutU32(&out, static_cast<std::uint32_t>(c.size()));
    out.insert(out.end(), c.begin(), c.end());
  }
  return out;
}

fedml::wire::Header BaseHeader() {
  fedml::wire::Header h;
  h.set_wire_version(kWireVersion);
  h.set_type(static_cast<std::uint32_t>(MessageType::kSyncModel));
  return h;
}

fedml::wire::TensorSpec* AddSpec(fedml::wire::Header* h, const std::string& name,
                                 std::vector<std::int64_t> shape, std::uint32_t dtype = 1,
                                 std::uint32_t group = 0) {
  auto* t = h->add_tensors();
  t->set_name(name);
  t->set_dtype(dtype);
  t->set_original_dtype(1);
  for (auto d : shape) t->add_shape(d);
  t->set_group(group);
  return t;
}

std::string HeaderChunk(const fedml::wire::Header& h) {
  fedml::wire::WireChunk c;
  *c.mutable_header() = h;
  return c.SerializeAsString();
}

std::string DataChunk(std::uint64_t seq, const std::string& bytes) {
  fedml::wire::WireChunk c;
  c.mutable_data()->set_seq(seq);
  c.mutable_data()->set_data(bytes);
  return c.SerializeAsString();
}

std::string FloatBytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());  // the tests run on little-endian hosts
  return s;
}

std::string DoubleBytes(const std::vector<double>& v) {
  std::string s(v.size() * 8, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

void RequireError(const fedml::Result<Message>& r, StatusCode code, const std::string& needle) {
  INFO("status: " << r.status().ToString());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == code);
  CHECK(r.status().message().find(needle) != std::string::npos);
}

// A one-tensor frame {"w": [2] float32} with a correct header.
fedml::wire::Header OneTensorHeader() {
  auto h = BaseHeader();
  AddSpec(&h, "w", {2});
  h.set_total_data_bytes(8);
  return h;
}

}  // namespace

TEST_CASE("MessageTypeName names every type", "[wire]") {
  CHECK(std::string(MessageTypeName(MessageType::kSyncModel)) == "SYNC_MODEL");
  CHECK(std::string(MessageTypeName(MessageType::kProtocol)) == "PROTOCOL");
  CHECK(std::string(MessageTypeName(static_cast<MessageType>(99))) == "UNKNOWN");
}

TEST_CASE("wire round trip keeps every field", "[wire]") {
  const Message m = MakeMessage();
  SECTION("one data chunk") { RequireSame(m, RoundTrip(m)); }
  SECTION("tiny chunks force many data chunks, splitting floats") {
    RequireSame(m, RoundTrip(m, 3));
    RequireSame(m, RoundTrip(m, 1));
  }
  SECTION("frame layout: magic, version, header chunk first") {
    auto frame = Encode(m);
    REQUIRE(frame.ok());
    REQUIRE(frame->size() > 12);
    CHECK(std::memcmp(frame->data(), "FMLW", 4) == 0);
    CHECK((*frame)[4] == kWireVersion);
    CHECK((*frame)[5] == 0);
  }
  SECTION("encoding is deterministic") {
    auto a = Encode(m);
    auto b = Encode(RoundTrip(m));
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(*a == *b);
  }
}

TEST_CASE("wire round trip of small and empty messages", "[wire]") {
  SECTION("empty model, default fields") {
    Message m;
    m.type = MessageType::kHeartbeat;
    const Message back = RoundTrip(m);
    RequireSame(m, back);
    CHECK(back.model.empty());
  }
  SECTION("zero-size tensors between non-empty ones") {
    Message m;
    m.type = MessageType::kSyncModel;
    m.model = MakeState({{"a", {0}}, {"b", {3}}, {"c", {2, 0, 5}}, {"d", {}}, {"e", {0}}});
    const Message back = RoundTrip(m, 4);
    RequireSame(m, back);
    CHECK(back.model.num_tensors() == 5);
    CHECK(back.model.specs()[2].shape == std::vector<std::int64_t>{2, 0, 5});
  }
  SECTION("original dtype and an empty extra name survive") {
    Message m;
    m.type = MessageType::kProtocol;
    std::vector<float> v = {1, 2, 3};
    REQUIRE(m.model.Add("steps", {3}, v.data(), DType::kInt64).ok());
    m.extras[""] = MakeState({{"x", {2}}});
    const Message back = RoundTrip(m);
    RequireSame(m, back);
    CHECK(back.model.specs()[0].dtype == DType::kInt64);
  }
  SECTION("a 64 MB model") {
    Message m;
    m.type = MessageType::kSyncModel;
    std::vector<float> v(std::size_t{16} << 20);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 1000) * 0.001f;
    REQUIRE(m.model.Add("big", {static_cast<std::int64_t>(v.size())}, v.data()).ok());
    RequireSame(m, RoundTrip(m, std::size_t{4} << 20));
  }
}

TEST_CASE("wire EncodeChunks and ChunkAssembler", "[wire]") {
  const Message m = MakeMessage();
  EncodeOptions opts;
  opts.chunk_bytes = 50;
  auto chunks = EncodeChunks(m, opts);
  REQUIRE(chunks.ok());
  REQUIRE(chunks->size() > 3);

  SECTION("assembles the message") {
    ChunkAssembler a;
    for (std::size_t i = 0; i < chunks->size(); ++i) {
      CHECK_FALSE(a.complete());
      REQUIRE(a.Add((*chunks)[i]).ok());
    }
    CHECK(a.complete());
    auto back = a.Finish();
    REQUIRE(back.ok());
    RequireSame(m, *back);
    auto again = a.Finish();
    CHECK(again.status().code() == StatusCode::kFailedPrecondition);
  }
  SECTION("chunks equal the frame's chunks") {
    auto frame = Encode(m, opts);
    REQUIRE(frame.ok());
    CHECK(*frame == Frame(*chunks));
  }
  SECTION("incomplete stream") {
    ChunkAssembler a;
    REQUIRE(a.Add((*chunks)[0]).ok());
    REQUIRE(a.Add((*chunks)[1]).ok());
    CHECK_FALSE(a.complete());
    RequireError(a.Finish(), StatusCode::kInvalidArgument, "truncated");
  }
  SECTION("no header") {
    ChunkAssembler a;
    RequireError(a.Finish(), StatusCode::kInvalidArgument, "no header");
  }
  SECTION("data before header poisons the assembler") {
    ChunkAssembler a;
    auto st = a.Add((*chunks)[1]);
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(st.message().find("before the header") != std::string::npos);
    CHECK_FALSE(a.Add((*chunks)[0]).ok());
    CHECK_FALSE(a.Finish().ok());
  }
  SECTION("streamed bytes over max_frame_bytes") {
    DecodeLimits limits;
    limits.max_frame_bytes = (*chunks)[0].size() + 60;
    ChunkAssembler a(limits);
    fedml::Status st;
    for (const std::string& c : *chunks) {
      st = a.Add(c);
      if (!st.ok()) break;
    }
    CHECK(st.code() == StatusCode::kResourceExhausted);
    CHECK(st.message().find("max_frame_bytes") != std::string::npos);
  }
  SECTION("chunk over max_chunk_bytes") {
    DecodeLimits limits;
    limits.max_chunk_bytes = 16;
    ChunkAssembler a(limits);
    auto st = a.Add((*chunks)[0]);
    CHECK(st.code() == StatusCode::kResourceExhausted);
    CHECK(st.message().find("max_chunk_bytes") != std::string::npos);
  }
}

TEST_CASE("wire Encode refuses what it cannot describe", "[wire]") {
  Message m;
  m.type = MessageType::kSyncModel;
  SECTION("invalid message type") {
    m.type = MessageType::kInvalid;
    auto r = Encode(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(r.status().message().find("message type 0") != std::string::npos);
    m.type = static_cast<MessageType>(kMaxMessageType + 1);
    CHECK_FALSE(Encode(m).ok());
  }
  SECTION("chunk_bytes zero") {
    EncodeOptions opts;
    opts.chunk_bytes = 0;
    auto r = Encode(m, opts);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("chunk_bytes") != std::string::npos);
    CHECK_FALSE(EncodeChunks(m, opts).ok());
  }
  SECTION("non-UTF-8 text") {
    m.attrs["error"] = "\xff\xfe";
    auto r = Encode(m);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("UTF-8") != std::string::npos);
  }
}

TEST_CASE("wire Decode rejects malformed frames", "[wire]") {
  const std::string data = FloatBytes({1.0f, 2.0f});
  const Bytes good = Frame({HeaderChunk(OneTensorHeader()), DataChunk(0, data)});
  REQUIRE(Decode(good).ok());

  SECTION("bad magic") {
    Bytes f = good;
    f[0] = 'X';
    RequireError(Decode(f), StatusCode::kInvalidArgument, "bad magic");
  }
  SECTION("unsupported frame version") {
    RequireError(Decode(Frame({HeaderChunk(OneTensorHeader()), DataChunk(0, data)}, "FMLW", 2)),
                 StatusCode::kInvalidArgument, "unsupported wire version 2");
  }
  SECTION("unsupported header version") {
    auto h = OneTensorHeader();
    h.set_wire_version(7);
    RequireError(Decode(Frame({HeaderChunk(h), DataChunk(0, data)})), StatusCode::kInvalidArgument,
                 "wire version 7");
  }
  SECTION("shorter than the preamble") {
    RequireError(Decode(good.data(), 5), StatusCode::kInvalidArgument, "preamble");
    RequireError(Decode(nullptr, 0), StatusCode::kInvalidArgument, "preamble");
  }
  SECTION("truncated chunk length") {
    Bytes f = good;
    f.push_back(1);
    f.push_back(0);
    RequireError(Decode(f), StatusCode::kInvalidArgument, "too few for a chunk length");
  }
  SECTION("chunk length past the end") {
    Bytes f = good;
    f.resize(f.size() - 3);
    RequireError(Decode(f), StatusCode::kInvalidArgument, "past the end of the frame");
  }
  SECTION("every truncation fails cleanly") {
    for (std::size_t n = 0; n < good.size(); ++n) {
      INFO("prefix of " << n << " bytes");
      CHECK_FALSE(Decode(good.data(), n).ok());
    }
  }
  SECTION("missing data chunk") {
    RequireError(Decode(Frame({HeaderChunk(OneTensorHeader())})), StatusCode::kInvalidArgument,
                 "received 0 of the 8");
  }
  SECTION("data shorter than announced") {
    RequireError(Decode(Frame({HeaderChunk(OneTensorHeader()), DataChunk(0, data.substr(0, 4))})),
                 StatusCode::kInvalidArgument, "received 4 of the 8");
  }
  SECTION("no header at all") {
    RequireError(Decode(Frame({})), StatusCode::kInvalidArgument, "no header");
  }
  SECTION("chunk larger than max_chunk_bytes") {
    DecodeLimits limits;
    limits.max_chunk_bytes = 4;
    RequireError(Decode(good, limits), StatusCode::kResourceExhausted, "max_chunk_bytes");
  }
  SECTION("frame larger than max_frame_bytes") {
    DecodeLimits limits;
    limits.max_frame_bytes = good.size() - 1;
    RequireError(Decode(good, limits), StatusCode::kResourceExhausted, "max_frame_bytes");
  }
  SECTION("announced data larger than max_frame_bytes") {
    auto h = BaseHeader();
    AddSpec(&h, "w", {1 << 20});
    h.set_total_data_bytes(4 << 20);
    DecodeLimits limits;
    limits.max_frame_bytes = 1 << 20;
    RequireError(Decode(Frame({HeaderChunk(h)}), limits), StatusCode::kResourceExhausted,
                 "max_frame_bytes");
  }
  SECTION("announced data larger than the frame") {
    auto h = BaseHeader();
    AddSpec(&h, "w", {1000});
    h.set_total_data_bytes(4000);
    RequireError(Decode(Frame({HeaderChunk(h)})), StatusCode::kInvalidArgument, "bytes follow it");
  }
  SECTION("unknown message types") {
    for (std::uint32_t type : {0u, kMaxMessageType + 1, 1000u}) {
      auto h = OneTensorHeader();
      h.set_type(type);
      RequireError(Decode(Frame({HeaderChunk(h), DataChunk(0, data)})),
                   StatusCode::kInvalidArgument, "unknown message type " + std::to_string(type));
    }
  }
  SECTION("more tensors than max_tensors") {
    auto h = BaseHeader();
    for (int i = 0; i < 5; ++i) AddSpec(&h, "t" + std::to_string(i), {0});
    DecodeLimits limits;
    limits.max_tensors = 4;
    RequireError(Decode(Frame({HeaderChunk(h)}), limits), StatusCode::kResourceExhausted,
                 "max_tensors");
    limits.max_tensors = 5;
    CHECK(Decode(Frame({HeaderChunk(h)}), limits).ok());
  }
  SECTION("negative dimension") {
    auto h = BaseHeader();
    AddSpec(&h, "w", {2, -3});
    RequireError(Decode(Frame({HeaderChunk(h)})), StatusCode::kInvalidArgument,
                 "negative dimension -3");
  }
  SECTION("element count overflow") {
    auto h = BaseHeader();
    AddSpec(&h, "w", {std::int64_t{1} << 40, std::int64_t{1} << 40});
    RequireError(Decode(Frame({HeaderChunk(h)})), StatusCode::kInvalidArgument, "overflows");
    auto h2 = BaseHeader();
    AddSpec(&h2, "w", {std::numeric_limits<std::int64_t>::max(), 3});
    RequireError(Decode(Frame({HeaderChunk(h2)})), StatusCode::kInvalidArgument, "overflows");
  }
  SECTION("byte count overflow") {
    auto h = BaseHeader();
    AddSpec(&h, "w", {std::int64_t{1} << 62});
    RequireError(Decode(Frame({HeaderChunk(h)})), StatusCode::kInvalidArgument, "overflows");
  }
  SECTION("announced total disagrees with the specs") {
    auto h = OneTensorHeader();
    h.set_total_data_bytes(12);
    RequireError(Decode(Frame({HeaderChunk(h), DataChunk(0, data + std::string(4, '\0'))})),
                 StatusCode::kInvalidArgument, "specs describe 8 bytes");
  }
  SECTION("duplicate tensor names") {
    auto h = BaseHeader();
    AddSpec(&h, "w", {1});
    AddSpec(&h, "w", {1});
    h.set_total_data_bytes(8);
    RequireError(Decode(Frame({HeaderChunk(h), DataChunk(0, data)})), StatusCode::kInvalidArgument,
                 "duplicate tensor name 'w'");
  }
  SECTION("the same name in different groups is fine") {
    auto h = BaseHeader();
    h.add_extra_names("momentum");
    AddSpec(&h, "w", {1});
    AddSpec(&h, "w", {1}, 1, 1);
    h.set_total_data_bytes(8);
    auto r = Decode(Frame({HeaderChunk(h), DataChunk(0, data)}));
    REQUIRE(r.ok());
    CHECK(r->extras.at("momentum").flat() == std::vector<float>{2.0f});
  }
  SECTION("duplicate extra names") {
    auto h = BaseHeader();
    h.add_extra_names("m");
    h.add_extra_names("m");
    RequireError(Decode(Frame({HeaderChunk(h)})), StatusCode::kInvalidArgument,
                 "duplicate extra name 'm'");
  }
  SECTION("group index past the extras") {
    auto h = BaseHeader();
    AddSpec(&h, "w", {0}, 1, 1);
    RequireError(Decode(Frame({HeaderChunk(h)})), StatusCode::kInvalidArgument,
                 "declares only 0 extras");
  }
  SECTION("empty tensor name") {
    auto h = BaseHeader();
    AddSpec(&h, "", {0});
    RequireError(Decode(Frame({HeaderChunk(h)})), StatusCode::kInvalidArgument, "empty name");
  }
  SECTION("unsupported wire dtypes") {
    for (std::uint32_t dt : {0u, 3u, 5u, 10u, 11u, 999u}) {
      auto h = BaseHeader();
      AddSpec(&h, "w", {2}, dt);
      h.set_total_data_bytes(8);
      RequireError(Decode(Frame({HeaderChunk(h), DataChunk(0, data)})),
                   StatusCode::kInvalidArgument, "only float32 and float64");
    }
  }
  SECTION("unknown original dtype") {
    auto h = OneTensorHeader();
    h.mutable_tensors(0)->set_original_dtype(42);
    RequireError(Decode(Frame({HeaderChunk(h), DataChunk(0, data)})), StatusCode::kInvalidArgument,
                 "unknown original dtype 42");
  }
  SECTION("data chunk before the header") {
    RequireError(Decode(Frame({DataChunk(0, data), HeaderChunk(OneTensorHeader())})),
                 StatusCode::kInvalidArgument, "before the header");
  }
  SECTION("second header") {
    RequireError(Decode(Frame({HeaderChunk(OneTensorHeader()), HeaderChunk(OneTensorHeader()),
                               DataChunk(0, data)})),
                 StatusCode::kInvalidArgument, "second header");
  }
  SECTION("data chunks out of order") {
    RequireError(Decode(Frame({HeaderChunk(OneTensorHeader()), DataChunk(1, data)})),
                 StatusCode::kInvalidArgument, "out of order");
  }
  SECTION("extra bytes after the data") {
    RequireError(Decode(Frame({HeaderChunk(OneTensorHeader()), DataChunk(0, data + "x")})),
                 StatusCode::kInvalidArgument, "extra bytes after the data");
    RequireError(
        Decode(Frame({HeaderChunk(OneTensorHeader()), DataChunk(0, data), DataChunk(1, "\x01")})),
        StatusCode::kInvalidArgument, "extra bytes after the data");
  }
  SECTION("garbage chunk") {
    RequireError(Decode(Frame({HeaderChunk(OneTensorHeader()), std::string("\xff\xff\xff", 3)})),
                 StatusCode::kInvalidArgument, "not a valid WireChunk");
  }
  SECTION("empty chunk holds nothing") {
    RequireError(Decode(Frame({HeaderChunk(OneTensorHeader()), std::string()})),
                 StatusCode::kInvalidArgument, "neither a header nor tensor data");
  }
  SECTION("non-finite values") {
    for (float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity()}) {
      const Bytes f = Frame({HeaderChunk(OneTensorHeader()), DataChunk(0, FloatBytes({1, bad}))});
      RequireError(Decode(f), StatusCode::kInvalidArgument, "non-finite");
      DecodeLimits lenient;
      lenient.require_finite = false;
      auto r = Decode(f, lenient);
      REQUIRE(r.ok());
      CHECK_FALSE(std::isfinite(r->model.flat()[1]));
    }
  }
  SECTION("float64 overflowing float32 is non-finite") {
    auto h = BaseHeader();
    AddSpec(&h, "w", {1}, 2);
    h.set_total_data_bytes(8);
    RequireError(Decode(Frame({HeaderChunk(h), DataChunk(0, DoubleBytes({1e300}))})),
                 StatusCode::kInvalidArgument, "non-finite");
  }
}

TEST_CASE("wire Decode accepts float64 tensors and non-canonical chunks", "[wire]") {
  auto h = BaseHeader();
  AddSpec(&h, "a", {3}, 2);  // float64
  AddSpec(&h, "b", {2}, 1);  // float32
  h.set_total_data_bytes(3 * 8 + 2 * 4);
  const std::string bytes = DoubleBytes({1.5, -2.25, 1e-3}) + FloatBytes({7.0f, 8.0f});
  SECTION("split at every byte") {
    std::vector<std::string> chunks = {HeaderChunk(h)};
    for (std::size_t i = 0; i < bytes.size(); ++i)
      chunks.push_back(DataChunk(i, bytes.substr(i, 1)));
    auto r = Decode(Frame(chunks));
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK(r->model.flat() == std::vector<float>{1.5f, -2.25f, 1e-3f, 7.0f, 8.0f});
  }
  SECTION("fields in non-canonical order go through Protobuf") {
    // TensorData with data (field 2) before seq (field 1).
    std::string inner;
    inner += '\x12';
    inner += static_cast<char>(bytes.size());
    inner += bytes;
    inner += '\x08';
    inner += '\x00';
    std::string chunk = "\x12";
    chunk += static_cast<char>(inner.size());
    chunk += inner;
    auto r = Decode(Frame({HeaderChunk(h), chunk}));
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK(r->model.flat() == std::vector<float>{1.5f, -2.25f, 1e-3f, 7.0f, 8.0f});
  }
}

TEST_CASE("ModelState::ZerosFromSpecs builds a state in one step", "[wire]") {
  std::vector<TensorSpec> specs = {{"a", DType::kFloat32, {2, 3}, 99},
                                   {"b", DType::kInt64, {}, 0},
                                   {"c", DType::kFloat32, {0, 4}, 0}};
  auto s = ModelState::ZerosFromSpecs(specs);
  REQUIRE(s.ok());
  CHECK(s->numel() == 7);
  CHECK(s->specs()[0].offset == 0);  // offsets are recomputed
  CHECK(s->specs()[1].offset == 6);
  CHECK(s->specs()[2].offset == 7);
  CHECK(s->specs()[1].dtype == DType::kInt64);
  specs.push_back({"a", DType::kFloat32, {1}, 0});
  auto dup = ModelState::ZerosFromSpecs(specs);
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.status().message().find("duplicate tensor name 'a'") != std::string::npos);
  auto neg = ModelState::ZerosFromSpecs({{"n", DType::kFloat32, {-1}, 0}});
  REQUIRE_FALSE(neg.ok());
  CHECK(neg.status().message().find("negative") != std::string::npos);
}
