// The .npz reader against archives numpy wrote (tests/data, generated with
// np.savez and np.savez_compressed), the shipped models' data, and corrupt
// input.
#include "runtime/npz.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace amp {
namespace {

std::string Data(const std::string& f) { return std::string(AMP_SOURCE_DIR) + "/tests/data/" + f; }

TEST(NpzTest, CompressedArchiveOfEveryType) {
  auto arrays = ReadNpz(Data("mixed_compressed.npz"));
  ASSERT_TRUE(arrays.ok()) << arrays.status().message();
  auto& a = *arrays;
  ASSERT_EQ(a.size(), 7u);
  const Tensor& f32 = a.at("f32");
  EXPECT_EQ(f32.dtype(), DType::kFloat32);
  EXPECT_EQ(f32.dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f32.GetDouble(1), -2.25);
  EXPECT_EQ(f32.GetDouble(5), -6.75);
  const Tensor& f16 = a.at("f16");
  EXPECT_EQ(f16.dtype(), DType::kFloat16);
  EXPECT_EQ(f16.GetDouble(1), -65504.0);
  EXPECT_NEAR(f16.GetDouble(0), 0.1, 1e-4);
  EXPECT_EQ(a.at("i64").GetInt(2), int64_t{1} << 40);
  EXPECT_EQ(a.at("i64").GetInt(1), -3);
  EXPECT_EQ(a.at("i32").dims(), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(a.at("b").GetInt(1), 0);
  EXPECT_EQ(a.at("b").GetInt(2), 1);
  EXPECT_TRUE(a.at("f64").dims().empty());
  EXPECT_EQ(a.at("f64").GetDouble(0), 2.5);
  EXPECT_EQ(a.at("init/fc.weight").GetDouble(4), 4.0);
}

TEST(NpzTest, StoredArchiveAndShippedData) {
  auto stored = ReadNpz(Data("mixed_stored.npz"));
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  EXPECT_EQ(stored->at("f32").GetDouble(1), 2.0);
  for (const char* model : {"mlp", "cnn", "tfm"}) {
    auto d = ReadNpz(std::string(AMP_SOURCE_DIR) + "/models/" + model + "/data.npz");
    ASSERT_TRUE(d.ok()) << d.status().message();
    ASSERT_TRUE(d->count("x0") && d->count("y3"));
    EXPECT_EQ(d->at("y0").dtype(), DType::kInt64);
    EXPECT_EQ(d->at("x0").dims()[0], d->at("y0").dims()[0]);  // first axis = samples
  }
}

TEST(NpzTest, CorruptArchivesAreErrors) {
  std::ifstream in(Data("mixed_compressed.npz"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::string path =
      (std::filesystem::temp_directory_path() / ("amp_npz_" + std::to_string(::getpid()))).string();
  auto write = [&](const std::string& b) { std::ofstream(path, std::ios::binary) << b; };
  for (size_t cut : {size_t{0}, size_t{10}, bytes.size() / 2, bytes.size() - 5}) {
    write(bytes.substr(0, cut));
    EXPECT_FALSE(ReadNpz(path).ok()) << "cut at " << cut;
  }
  std::mt19937 rng(11);
  for (int trial = 0; trial < 100; ++trial) {
    std::string damaged = bytes;
    for (int k = 0; k < 8; ++k) damaged[rng() % damaged.size()] = static_cast<char>(rng());
    write(damaged);
    (void)ReadNpz(path);  // may succeed or fail; must not crash (ASan/UBSan watch)
  }
  std::filesystem::remove(path);
  EXPECT_FALSE(ReadNpz("/nonexistent/data.npz").ok());
}

TEST(NpzTest, NpyHeaderErrors) {
  std::string npy = std::string("\x93NUMPY\x01\x00", 8);
  std::string header = "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }";
  npy += static_cast<char>(header.size()) + std::string(1, '\0') + header + std::string(8, '\0');
  auto r = ParseNpy(reinterpret_cast<const uint8_t*>(npy.data()), npy.size(), "x");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("element type '>f4' is not supported"), std::string::npos);
}

// A version 1.0 .npy file: magic, header length, `header`, then `data`.
std::string Npy(const std::string& header, const std::string& data) {
  std::string npy = std::string("\x93NUMPY\x01\x00", 8);
  npy += static_cast<char>(header.size() & 0xff);
  npy += static_cast<char>(header.size() >> 8);
  return npy + header + data;
}

StatusOr<Tensor> ParseNpyString(const std::string& npy) {
  return ParseNpy(reinterpret_cast<const uint8_t*>(npy.data()), npy.size(), "x");
}

// The error message of parsing `header` (with 8 data bytes), "" if it parsed.
std::string NpyHeaderError(const std::string& header) {
  auto r = ParseNpyString(Npy(header, std::string(8, '\0')));
  return r.ok() ? "" : r.status().message();
}

TEST(NpzTest, NpyHeaderIsTheDictNumpyWrites) {
  // numpy's own spelling, other spacing, double quotes, no trailing comma: all read.
  for (const char* h : {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }      \n",
                        "{ \"shape\" : ( 2 , ) ,'fortran_order':False,'descr':'<f4'}",
                        "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 2)}\n"}) {
    EXPECT_EQ(NpyHeaderError(h), "") << h;
  }
  auto scalar = ParseNpyString(
      Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (), }\n", std::string(8, '\0')));
  ASSERT_TRUE(scalar.ok()) << scalar.status().message();
  EXPECT_TRUE(scalar->dims().empty());
  // Any nonzero byte of a bool array is True, stored as 1.
  auto b = ParseNpyString(Npy("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }\n",
                              std::string("\x00\x02\xff", 3)));
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->data()[0], 0);
  EXPECT_EQ(b->data()[1], 1);
  EXPECT_EQ(b->data()[2], 1);
}

TEST(NpzTest, NpyNegativeDimIsAnError) {
  // The old reader took the digits of "-1" and read a 1.
  EXPECT_NE(NpyHeaderError("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }")
                .find("negative dim"),
            std::string::npos);
  EXPECT_NE(NpyHeaderError("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }")
                .find("negative dim"),
            std::string::npos);
}

TEST(NpzTest, NpyHeaderWithoutClosingBraceIsAnError) {
  EXPECT_NE(NpyHeaderError("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ")
                .find("no closing '}'"),
            std::string::npos);
  EXPECT_NE(NpyHeaderError("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)")
                .find("expected ',' or '}'"),
            std::string::npos);
  EXPECT_NE(NpyHeaderError("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x")
                .find("text after the closing '}'"),
            std::string::npos);
}

TEST(NpzTest, NpyDuplicateOrUnknownKeysAreErrors) {
  // Python keeps the last of two equal keys (numpy would read 4 elements); amp
  // refuses rather than pick one.
  EXPECT_NE(NpyHeaderError("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), "
                           "'shape': (4,), }")
                .find("key 'shape' appears twice"),
            std::string::npos);
  EXPECT_NE(NpyHeaderError("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, "
                           "'shape': (1,), }")
                .find("key 'descr' appears twice"),
            std::string::npos);
  EXPECT_NE(NpyHeaderError("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}")
                .find("unexpected key 'x'"),
            std::string::npos);
  EXPECT_NE(NpyHeaderError("{'descr': '<f4', 'shape': (2,), }").find("no 'fortran_order'"),
            std::string::npos);
  // (2) is the number 2 in Python, not a shape.
  EXPECT_NE(NpyHeaderError("{'descr': '<f4', 'fortran_order': False, 'shape': (2), }")
                .find("'shape' is not a tuple"),
            std::string::npos);
  EXPECT_NE(NpyHeaderError("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }")
                .find("not True or False"),
            std::string::npos);
}

// An uncompressed archive of `arrays` as WriteNpz writes it, as bytes.
std::string NpzBytes(const std::map<std::string, Tensor>& arrays) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("amp_npz_bytes_" + std::to_string(::getpid()) + ".npz"))
                         .string();
  EXPECT_TRUE(WriteNpz(path, arrays).ok());
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::filesystem::remove(path);
  return bytes;
}

StatusOr<std::map<std::string, Tensor>> ReadNpzString(const std::string& b) {
  return ReadNpzBytes(reinterpret_cast<const uint8_t*>(b.data()), b.size());
}

void Put32At(std::string& b, size_t at, uint32_t v) {
  for (int k = 0; k < 4; ++k) b[at + k] = static_cast<char>(v >> (8 * k));
}

TEST(NpzTest, ReadNpzBytesReadsWhatWriteNpzWrites) {
  Tensor t = Tensor::FromVector<float>(DType::kFloat32, {2}, {1.5f, -2.0f});
  auto r = ReadNpzString(NpzBytes({{"a", t}, {"b/c", t}}));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(r->at("b/c").GetDouble(1), -2.0);
}

TEST(NpzTest, DuplicateMemberNamesAreAnError) {
  // Rename member "b.npy" to "a.npy" in its local header and its
  // central-directory entry (the CRCs cover only the data, so they stay right).
  Tensor t = Tensor::FromVector<float>(DType::kFloat32, {1}, {1.0f});
  std::string bytes = NpzBytes({{"a", t}, {"b", t}});
  int renamed = 0;
  for (size_t at = bytes.find("b.npy"); at != std::string::npos; at = bytes.find("b.npy", at)) {
    bytes[at] = 'a';
    ++renamed;
  }
  ASSERT_EQ(renamed, 2);
  auto r = ReadNpzString(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("two members are named 'a.npy'"), std::string::npos)
      << r.status().message();
}

TEST(NpzTest, MemberLargerThanTheArchiveIsAnError) {
  Tensor t = Tensor::FromVector<float>(DType::kFloat32, {1}, {1.0f});
  std::string bytes = NpzBytes({{"a", t}});
  size_t cd = bytes.find("PK\x01\x02");
  ASSERT_NE(cd, std::string::npos);
  // A stored member declaring 1 GiB: its data would run past the archive.
  std::string big = bytes;
  Put32At(big, cd + 20, 1u << 30);
  Put32At(big, cd + 24, 1u << 30);
  auto r = ReadNpzString(big);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("extends past the end of its data"), std::string::npos)
      << r.status().message();
  // A deflated member (numpy's savez_compressed) declaring about 4 GiB once
  // inflated: an error after inflating what is there, not a 4 GiB buffer.
  std::ifstream in(Data("mixed_compressed.npz"), std::ios::binary);
  std::string z((std::istreambuf_iterator<char>(in)), {});
  size_t zcd = z.find("PK\x01\x02");
  ASSERT_NE(zcd, std::string::npos);
  ASSERT_EQ(z[zcd + 10], 8);  // deflated
  Put32At(z, zcd + 24, 0xfffffffe);
  auto rz = ReadNpzString(z);
  ASSERT_FALSE(rz.ok());
  EXPECT_NE(rz.status().message().find("does not inflate to its declared size"), std::string::npos)
      << rz.status().message();
  // The central directory itself may not reach past the end record.
  std::string cd_far = bytes;
  size_t eocd = cd_far.rfind("PK\x05\x06");
  Put32At(cd_far, eocd + 12, static_cast<uint32_t>(cd_far.size()));
  EXPECT_FALSE(ReadNpzString(cd_far).ok());
}

}  // namespace
}  // namespace amp
