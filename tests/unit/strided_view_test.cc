// compiler/strided_view: the views a walk finds are checked against running
// the layout ops themselves on distinct values (each element its own storage
// index), on the forms exporters write around attention.
#include "compiler/strided_view.h"

#include <gtest/gtest.h>

#include "compiler/loader.h"
#include "runtime/executor.h"

namespace amp {
namespace {

// Runs text's graph forward with input `x` = 0, 1, 2, ... and returns its
// output `name`.
StatusOr<Tensor> RunOnIota(const std::string& text, const std::string& name) {
  AMP_ASSIGN_OR_RETURN(Model m, LoadModelText(text));
  ExecutorOptions o;
  o.mode = TrainingInfoMode::kForward;
  o.poison = true;
  AMP_ASSIGN_OR_RETURN(auto s, Executor::Create(std::move(m), o));
  const Value* in = s->model().graph->inputs()[0];
  Tensor x(DType::kFloat32, *StaticDims(*in->type().shape));
  for (int64_t i = 0; i < x.num_elements(); ++i) x.SetDouble(i, static_cast<double>(i));
  AMP_RETURN_IF_ERROR(s->SetInput(in->name(), x));
  AMP_RETURN_IF_ERROR(s->Run());
  return s->Fetch(name);
}

// The storage indices the view names, in the view's row-major order.
std::vector<int64_t> Indices(const StridedView& v) {
  std::vector<int64_t> out, at(v.sizes.size(), 0);
  for (int64_t e = 0; e < v.num_elements(); ++e) {
    int64_t i = v.offset;
    for (size_t d = 0; d < at.size(); ++d) i += at[d] * v.strides[d];
    out.push_back(i);
    for (size_t d = at.size(); d-- > 0;) {
      if (++at[d] < v.sizes[d]) break;
      at[d] = 0;
    }
  }
  return out;
}

Value* Find(Model& m, const std::string& name) {
  for (Node* n : m.graph->nodes())
    for (size_t i = 0; i < n->num_outputs(); ++i)
      if (n->output(i) && n->output(i)->name() == name) return n->output(i);
  return nullptr;
}

// TorchScript's nn.MultiheadAttention: the packed in-projection [S, B, 3E]
// unflattened, moved and split into q, k, v, each [B*H, S, D] then
// [B, H, S, D]; q read up to x is the view of x's storage the running ops
// give, element for element.
constexpr char kMha[] = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[5,2,36] x) => (float[2,3,5,4] q, float[2,3,5,4] k, float[2,3,5,4] v)
<int64[4] s1 = {5, 2, 3, 12}, int64[1] z = {0}, int64[1] three = {3}, int64 i0 = {0},
 int64 i1 = {1}, int64 i2 = {2}, int64[3] s2 = {5, 6, 4}, int64[4] s3 = {2, 3, 5, 4}>
{
  r = Reshape (x, s1)
  u = Unsqueeze (r, z)
  t = Transpose <perm = [3, 1, 2, 0, 4]> (u)
  sq = Squeeze (t, three)
  g0 = Gather <axis = 0> (sq, i0)
  g1 = Gather <axis = 0> (sq, i1)
  g2 = Gather <axis = 0> (sq, i2)
  a0 = Reshape (g0, s2)
  a1 = Reshape (g1, s2)
  a2 = Reshape (g2, s2)
  b0 = Transpose <perm = [1, 0, 2]> (a0)
  b1 = Transpose <perm = [1, 0, 2]> (a1)
  b2 = Transpose <perm = [1, 0, 2]> (a2)
  q = Reshape (b0, s3)
  k = Reshape (b1, s3)
  v = Reshape (b2, s3)
})";

TEST(StridedViewTest, ReadViewsOfTorchScriptAttentionAreTheOpsElements) {
  auto m = LoadModelText(kMha);
  ASSERT_TRUE(m.ok()) << m.status().message();
  for (const char* name : {"q", "k", "v"}) {
    Value* out = nullptr;
    for (Value* o : m->graph->outputs())
      if (o->name() == name) out = o;
    ASSERT_NE(out, nullptr);
    auto view = ReadView(out);
    ASSERT_TRUE(view.has_value());
    EXPECT_EQ(view->base->name(), "x") << name << ": stopped at " << view->base->name();
    EXPECT_EQ(view->walked.size(), 8u);
    auto ran = RunOnIota(kMha, name);
    ASSERT_TRUE(ran.ok()) << ran.status().message();
    std::vector<int64_t> idx = Indices(view->view);
    ASSERT_EQ(static_cast<int64_t>(idx.size()), ran->num_elements());
    for (size_t i = 0; i < idx.size(); ++i)
      ASSERT_EQ(idx[i], static_cast<int64_t>(ran->GetDouble(i))) << name << " element " << i;
  }
}

// The dynamo exporter's forms: Split into three, Slice with a step, a
// Transpose of the last two axes; each read up to x.
TEST(StridedViewTest, SplitSliceAndTransposeViewsAreTheOpsElements) {
  constexpr char kFlat[] = R"(<ir_version: 8, opset_import: ["" : 18]>
g (float[4,6,9] x) => (float[4,3,6] y, float[2,2,6] w, float[4,2,6] s)
<int64[1] st = {1}, int64[1] en = {9}, int64[1] ax = {2}, int64[1] step = {4},
 int64[1] st0 = {-3}, int64[1] en0 = {100}, int64[1] ax0 = {0}, int64[1] step0 = {2}>
{
  p0, p1, p2 = Split <axis = 2, num_outputs = 3> (x)
  y = Transpose <perm = [0, 2, 1]> (p1)
  c = Slice (x, st0, en0, ax0, step0)
  c2 = Slice (c, st, en, ax, step)
  w = Transpose <perm = [0, 2, 1]> (c2)
  d = Slice (x, st, en, ax, step)
  s = Transpose <perm = [0, 2, 1]> (d)
})";
  auto m = LoadModelText(kFlat);
  ASSERT_TRUE(m.ok()) << m.status().message();
  for (Value* out : m->graph->outputs()) {
    auto view = ReadView(out);
    ASSERT_TRUE(view.has_value());
    EXPECT_EQ(view->base->name(), "x") << out->name() << ": stopped at " << view->base->name();
    auto ran = RunOnIota(kFlat, out->name());
    ASSERT_TRUE(ran.ok()) << ran.status().message();
    std::vector<int64_t> idx = Indices(view->view);
    ASSERT_EQ(static_cast<int64_t>(idx.size()), ran->num_elements()) << out->name();
    for (size_t i = 0; i < idx.size(); ++i)
      ASSERT_EQ(idx[i], static_cast<int64_t>(ran->GetDouble(i))) << out->name() << " " << i;
  }
}

// Down: the three [B, H, S, D] gradients written into the packed [S, B, 3E]
// gradient through autodiff's inverse layout ops and a Concat are three
// views of it that tile it; running the ops on the concatenation of distinct
// values puts each where its view says.
TEST(StridedViewTest, WriteViewsThroughConcatTileThePackedGradient) {
  constexpr char kText[] = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[3,2,3,5,4] all) => (float[5,2,36] dx)
<int64[3] s2 = {6, 5, 4}, int64[3] s4 = {5, 2, 12}, int64[1] z = {0},
 int64[5] s5 = {3, 5, 2, 1, 12}, int64[4] s6 = {5, 2, 3, 12}, int64[3] s7 = {5, 2, 36},
 int64 i0 = {0}, int64 i1 = {1}, int64 i2 = {2}>
{
  dq = Gather <axis = 0> (all, i0)
  dk = Gather <axis = 0> (all, i1)
  dv = Gather <axis = 0> (all, i2)
  a0 = Reshape (dq, s2)
  a1 = Reshape (dk, s2)
  a2 = Reshape (dv, s2)
  b0 = Transpose <perm = [1, 0, 2]> (a0)
  b1 = Transpose <perm = [1, 0, 2]> (a1)
  b2 = Transpose <perm = [1, 0, 2]> (a2)
  c0 = Reshape (b0, s4)
  c1 = Reshape (b1, s4)
  c2 = Reshape (b2, s4)
  u0 = Unsqueeze (c0, z)
  u1 = Unsqueeze (c1, z)
  u2 = Unsqueeze (c2, z)
  cat = Concat <axis = 0> (u0, u1, u2)
  r = Reshape (cat, s5)
  t = Transpose <perm = [3, 1, 2, 0, 4]> (r)
  r2 = Reshape (t, s6)
  dx = Reshape (r2, s7)
})";
  auto m = LoadModelText(kText);
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto ran = RunOnIota(kText, "dx");
  ASSERT_TRUE(ran.ok()) << ran.status().message();
  std::vector<int> seen(ran->num_elements(), 0);
  const int64_t part = 2 * 3 * 5 * 4;
  for (int j = 0; j < 3; ++j) {
    Value* d = Find(*m, j == 0 ? "dq" : j == 1 ? "dk" : "dv");
    ASSERT_NE(d, nullptr);
    auto view = WriteView(d, [](const Value*) { return false; });
    ASSERT_TRUE(view.has_value());
    EXPECT_EQ(view->base->name(), "dx") << "stopped at " << view->base->name();
    std::vector<int64_t> idx = Indices(view->view);
    ASSERT_EQ(static_cast<int64_t>(idx.size()), part);
    for (int64_t i = 0; i < part; ++i) {
      ASSERT_GE(idx[i], 0);
      ASSERT_LT(idx[i], ran->num_elements());
      ++seen[idx[i]];
      // dx at the view's index holds element i of this gradient.
      ASSERT_EQ(static_cast<int64_t>(ran->GetDouble(idx[i])), j * part + i) << j << " " << i;
    }
  }
  for (int s : seen) ASSERT_EQ(s, 1);
}

// Where a view does not survive, the walk stops before the op: a Reshape
// that splits a strided axis unevenly, a Gather of several indices, a
// value with a second reader below.
TEST(StridedViewTest, WalksStopWhereTheViewDoesNotSurvive) {
  constexpr char kText[] = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[4,6] x) => (float[3,8] y, float[2,6] w, float[6,4] t2, float[24] f)
<int64[2] s = {3, 8}, int64[2] idx = {0, 2}, int64[1] flat = {24}>
{
  t = Transpose <perm = [1, 0]> (x)
  y = Reshape (t, s)
  w = Gather <axis = 0> (x, idx)
  t2 = Identity (t)
  f = Reshape (t, flat)
})";
  auto m = LoadModelText(kText);
  ASSERT_TRUE(m.ok()) << m.status().message();
  for (Value* out : m->graph->outputs()) {
    auto view = ReadView(out);
    ASSERT_TRUE(view.has_value());
    if (out->name() == "w") {
      EXPECT_EQ(view->base, out);
    }
    if (out->name() == "y" || out->name() == "f") {
      // The Reshape keeps t's storage; the Transpose below it cannot be
      // seen through: [3, 8] rows of a transposed [6, 4] are not strided.
      EXPECT_EQ(view->base->name(), "t") << out->name();
    }
    if (out->name() == "t2") {
      EXPECT_EQ(view->base->name(), "x");
      EXPECT_EQ(view->view, (StridedView{0, {6, 4}, {1, 6}}));
    }
  }
  // t has three readers: a write view of x's transpose stops at t.
  Value* t = Find(*m, "t");
  ASSERT_NE(t, nullptr);
  auto down = WriteView(t, [](const Value*) { return false; });
  ASSERT_TRUE(down.has_value());
  EXPECT_EQ(down->base, t);
  EXPECT_TRUE(down->walked.empty());
}

}  // namespace
}  // namespace amp
