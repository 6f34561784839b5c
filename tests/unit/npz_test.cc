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

}  // namespace
}  // namespace amp
