// Malformed and hostile inputs at the library level: every one is an error
// Status with a message that names the problem, never a crash or a hang.
// (tests/python/malformed_cli_test.py checks the same through amp-compile.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "compiler/loader.h"
#include "compiler/onnx_export.h"
#include "compiler/onnx_import.h"
#include "compiler/shape_inference.h"
#include "onnx/onnx_pb.h"

namespace amp {
namespace {

namespace fs = std::filesystem;

std::string ModelPath(const std::string& name) {
  return std::string(AMP_SOURCE_DIR) + "/models/" + name + "/model.onnx";
}

std::string ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void ExpectError(const StatusOr<Model>& m, const std::string& fragment) {
  ASSERT_FALSE(m.ok()) << "expected an error containing: " << fragment;
  EXPECT_NE(m.status().message().find(fragment), std::string::npos) << m.status().message();
}

// A small valid model: y = Relu(x) with an initializer w added to it.
onnx::ModelProto SmallModel() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto add_vi = [](google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list,
                   const std::string& name, std::vector<int64_t> dims) {
    auto* vi = list->Add();
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  };
  add_vi(g->mutable_input(), "x", {4});
  add_vi(g->mutable_output(), "y", {4});
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(4);
  for (float v : {1.0f, -2.0f, 3.0f, 0.5f}) w->add_float_data(v);
  auto* n1 = g->add_node();
  n1->set_op_type("Add");
  n1->add_input("x");
  n1->add_input("w");
  n1->add_output("s");
  auto* n2 = g->add_node();
  n2->set_op_type("Relu");
  n2->add_input("s");
  n2->add_output("y");
  return m;
}

StatusOr<Model> Load(const onnx::ModelProto& proto) {
  std::string bytes = proto.SerializeAsString();
  AMP_ASSIGN_OR_RETURN(Model m, ImportModelBytes(bytes.data(), bytes.size(), ""));
  AMP_RETURN_IF_ERROR(RunShapeInference(m));
  return m;
}

TEST(ImportTest, SmallModelLoads) {
  auto m = Load(SmallModel());
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->graph->FindValue("y")->type().ToString(), "float[4]");
  EXPECT_EQ(m->graph->FindValue("w")->initializer()->GetDouble(1), -2.0);
}

TEST(ImportTest, EmptyRandomAndTruncatedBytes) {
  ExpectError(ImportModelBytes("", 0, ""), "empty");
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string junk(1 + rng() % 4096, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    auto m = ImportModelBytes(junk.data(), junk.size(), "");
    EXPECT_FALSE(m.ok());  // must fail cleanly (ASan/UBSan watch the rest)
  }
  std::string good = ReadBytes(ModelPath("cnn"));
  ASSERT_GT(good.size(), 1000u);
  for (size_t cut : {size_t{1}, size_t{10}, size_t{100}, good.size() / 2, good.size() - 1}) {
    auto m = ImportModelBytes(good.data(), cut, "");
    EXPECT_FALSE(m.ok()) << "cut at " << cut;
  }
}

TEST(ImportTest, NestingThousandsDeepIsRefused) {
  // GraphProto{node: NodeProto{attribute: AttributeProto{g: GraphProto{...}}}}
  // encoded by hand, 5000 levels deep, inside ModelProto.graph.
  auto wrap = [](int field, const std::string& body) {
    std::string out;
    out += static_cast<char>((field << 3) | 2);
    uint64_t n = body.size();
    do {
      uint8_t b = n & 0x7f;
      n >>= 7;
      out += static_cast<char>(b | (n ? 0x80 : 0));
    } while (n);
    return out + body;
  };
  std::string graph;
  for (int depth = 0; depth < 5000; ++depth) {
    std::string attr = wrap(6, graph);  // AttributeProto.g = 6
    std::string node = wrap(5, attr);   // NodeProto.attribute = 5
    graph = wrap(1, node);              // GraphProto.node = 1
  }
  std::string model = "\x08\x08" + wrap(7, graph);  // ir_version 8; ModelProto.graph = 7
  ExpectError(ImportModelBytes(model.data(), model.size(), ""), "deeper than");
}

TEST(ImportTest, StructuralErrorsNameTheProblem) {
  {
    auto p = SmallModel();
    p.mutable_graph()->mutable_node(1)->set_input(0, "nowhere");
    ExpectError(Load(p), "reads 'nowhere', which no node, input or initializer defines");
  }
  {
    auto p = SmallModel();
    p.mutable_graph()->mutable_node(0)->set_input(0, "y");  // Add reads Relu's output: a cycle
    ExpectError(Load(p), "cycle");
  }
  {
    auto p = SmallModel();
    p.mutable_graph()->mutable_node(1)->set_op_type("FancyOp");
    p.mutable_graph()->mutable_node(1)->set_name("my_node");
    ExpectError(Load(p), "node 'my_node' (FancyOp): op 'FancyOp' is not supported");
  }
  {
    auto p = SmallModel();
    p.mutable_opset_import(0)->set_version(9);
    ExpectError(Load(p), "unsupported opset 9");
  }
  {
    auto p = SmallModel();
    p.mutable_opset_import(0)->set_version(99);
    ExpectError(Load(p), "unsupported opset 99");
  }
  {
    auto p = SmallModel();
    p.set_ir_version(3);
    ExpectError(Load(p), "unsupported ONNX IR version 3");
  }
  {
    auto p = SmallModel();
    p.mutable_graph()->mutable_node(1)->set_output(0, "s");  // defines s twice
    ExpectError(Load(p), "defines 's', which is already defined");
  }
  {
    auto p = SmallModel();
    *p.mutable_graph()->add_output() = p.graph().output(0);
    ExpectError(Load(p), "graph output 'y' is listed twice");
  }
  {
    auto p = SmallModel();
    p.mutable_graph()->mutable_output(0)->set_name("missing");
    ExpectError(Load(p), "graph output 'missing' is not defined");
  }
}

TEST(ImportTest, TensorDataErrors) {
  {
    auto p = SmallModel();
    auto* w = p.mutable_graph()->mutable_initializer(0);
    w->clear_float_data();
    w->set_raw_data(std::string(8, '\0'));  // 2 floats for a [4] tensor
    ExpectError(Load(p),
                "initializer 'w' has 8 bytes of raw data but its shape [4] of float needs 16");
  }
  {
    auto p = SmallModel();
    p.mutable_graph()->mutable_initializer(0)->set_dims(0, -4);
    ExpectError(Load(p), "negative dim -4");
  }
  {
    auto p = SmallModel();
    auto* w = p.mutable_graph()->mutable_initializer(0);
    w->set_dims(0, int64_t{1} << 50);
    ExpectError(Load(p), "larger than amp accepts");
  }
  {
    auto p = SmallModel();
    auto* w = p.mutable_graph()->mutable_initializer(0);
    w->set_dims(0, 1 << 20);
    w->add_dims(1 << 20);
    w->add_dims(1 << 20);  // 2^60 elements
    ExpectError(Load(p), "larger than amp accepts");
  }
  {
    auto p = SmallModel();
    auto* dim = p.mutable_graph()
                    ->mutable_input(0)
                    ->mutable_type()
                    ->mutable_tensor_type()
                    ->mutable_shape()
                    ->mutable_dim(0);
    dim->set_dim_value(-3);
    ExpectError(Load(p), "graph input 'x' has a negative dim -3");
  }
}

class ExternalDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("amp_ext_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "model");
    std::ofstream(root_ / "model" / "w.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(values_), sizeof(values_));
    std::ofstream(root_ / "outside.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(values_), sizeof(values_));
  }
  void TearDown() override { fs::remove_all(root_); }

  StatusOr<Model> LoadWith(const std::string& location, int64_t offset, int64_t length) {
    auto p = SmallModel();
    auto* w = p.mutable_graph()->mutable_initializer(0);
    w->clear_float_data();
    w->set_data_location(onnx::TensorProto::EXTERNAL);
    auto add = [w](const std::string& k, const std::string& v) {
      auto* kv = w->add_external_data();
      kv->set_key(k);
      kv->set_value(v);
    };
    add("location", location);
    add("offset", std::to_string(offset));
    if (length >= 0) add("length", std::to_string(length));
    std::string path = (root_ / "model" / "m.onnx").string();
    std::ofstream(path, std::ios::binary) << p.SerializeAsString();
    return LoadModel(path);
  }

  fs::path root_;
  float values_[6] = {0.25f, -1.0f, 2.0f, 8.0f, 3.5f, -0.5f};
};

TEST_F(ExternalDataTest, ReadsTheWindow) {
  auto m = LoadWith("w.bin", 8, 16);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const Tensor* w = m->graph->FindValue("w")->initializer();
  EXPECT_TRUE(w->is_external());
  EXPECT_EQ(w->GetDouble(0), 2.0);
  EXPECT_EQ(w->GetDouble(3), -0.5);
}

TEST_F(ExternalDataTest, RefusesPathsOutsideTheFolder) {
  ExpectError(LoadWith((root_ / "outside.bin").string(), 0, 16), "absolute path");
  ExpectError(LoadWith("../outside.bin", 0, 16), "outside the model's folder");
  ExpectError(LoadWith("sub/../../outside.bin", 0, 16), "outside the model's folder");
  fs::create_symlink(root_ / "outside.bin", root_ / "model" / "link.bin");
  ExpectError(LoadWith("link.bin", 0, 16), "outside the model's folder");
}

TEST_F(ExternalDataTest, MissingOrShortFiles) {
  ExpectError(LoadWith("nothere.bin", 0, 16), "cannot be read");
  ExpectError(LoadWith("w.bin", 16, 16), "fewer than offset 16 + length 16");
  ExpectError(LoadWith("w.bin", 0, 12), "does not match its shape");
  ExpectError(LoadWith("w.bin", -4, 16), "negative");
}

TEST_F(ExternalDataTest, ExportWritesExternalDataThatReadsBack) {
  auto m = LoadWith("w.bin", 0, 16);
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::string out = (root_ / "model" / "out.onnx").string();
  ExportOptions eo;
  eo.external_data_threshold = 1;
  ASSERT_TRUE(SaveModelFile(*m, out, eo).ok());
  EXPECT_TRUE(fs::exists(out + ".data"));
  auto back = LoadModel(out);
  ASSERT_TRUE(back.ok()) << back.status().message();
  const Tensor* w = back->graph->FindValue("w")->initializer();
  EXPECT_TRUE(w->is_external());
  EXPECT_EQ(w->GetDouble(2), 2.0);
}

TEST(ImportTest, ShippedModelsLoad) {
  for (const char* name : {"mlp", "cnn", "tfm"}) {
    for (const char* file : {"model.onnx", "model.dynamo_eval.onnx"}) {
      auto m = LoadModel(std::string(AMP_SOURCE_DIR) + "/models/" + name + "/" + file);
      ASSERT_TRUE(m.ok()) << name << "/" << file << ": " << m.status().message();
      for (const Value* out : m->graph->outputs()) EXPECT_TRUE(out->type().shape.has_value());
    }
  }
}

}  // namespace
}  // namespace amp
