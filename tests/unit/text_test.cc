// The printer's output is read back by the ONNX text parser, and printing
// again gives the same text (a fixed point).
#include "compiler/text.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "compiler/loader.h"

namespace amp {
namespace {

std::vector<std::string> GoldenParts(const std::string& file) {
  std::ifstream f(std::string(AMP_SOURCE_DIR) + "/tests/golden/" + file);
  std::vector<std::string> parts(1);
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("# -----", 0) == 0)
      parts.emplace_back();
    else
      parts.back() += line + "\n";
  }
  return parts;
}

class TextRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(TextRoundTrip, PrintParsePrintIsAFixedPoint) {
  int checked = 0;
  for (const std::string& part : GoldenParts(GetParam())) {
    auto m = LoadModelText(part);
    ASSERT_TRUE(m.ok()) << m.status().message();
    std::string printed = PrintModel(*m);
    auto again = LoadModelText(printed);
    ASSERT_TRUE(again.ok()) << again.status().message() << "\n" << printed;
    EXPECT_EQ(PrintModel(*again), printed);
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Golden, TextRoundTrip,
                         ::testing::Values("import.onnxtxt", "shape_data.onnxtxt", "dce.onnxtxt",
                                           "fold_shapes.onnxtxt"),
                         [](const auto& info) {
                           std::string n = info.param;
                           return n.substr(0, n.find('.'));
                         });

TEST(TextTest, ParseErrorsAreStatuses) {
  auto m = LoadModelText(
      "<ir_version: 8, opset_import: [\"\" : 17]> main (float[2] x) => (float[2] y) { y = Relu(x");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("cannot parse ONNX text"), std::string::npos);
}

TEST(TextTest, FloatsKeepTheirType) {
  auto ok = LoadModelText(R"(<ir_version: 8, opset_import: ["" : 17]>
main (float[2] x) => (float[2] y) { y = LeakyRelu <alpha = 1.0e-05> (x) })");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  std::string printed = PrintModel(*ok);
  EXPECT_NE(printed.find("alpha = 9.99999975e-06"), std::string::npos) << printed;
  EXPECT_TRUE(LoadModelText(printed).ok());
}

}  // namespace
}  // namespace amp
