#include "passes/fuse_gemm_epilogue.h"

#include <optional>
#include <vector>

#include "compiler/const_eval.h"
#include "compiler/shape_inference.h"

namespace amp {
namespace {

bool IsMatMulT(const Node* n) { return n && n->op_type() == "MatMulT" && n->domain() == "ai.amp"; }

// A GEMM whose epilogue is still free: MatMul, a MatMulT with no activation
// and no bias gradient (it may add a bias: the activation comes after it),
// or a Gemm without a bias.
bool FreeGemm(const Node* n) {
  if (IsDefaultOp(n, "MatMul")) return true;
  if (IsDefaultOp(n, "Gemm")) return !n->input(2) || n->GetFloat("beta", 1.0f) == 0.0f;
  return IsMatMulT(n) && !n->HasAttr("activation") && !n->HasAttr("bias_grad");
}

// A MatMulT computing what `n` (a FreeGemm) computes, with `bias` when
// given, placed where `n` is; `n` is left for the caller to replace.
Node* MakeMatMulT(Model& model, Node* n, Value* bias, const std::string& hint,
                  Value* relu_mask = nullptr) {
  Graph& g = *model.graph;
  std::vector<Value*> in = {n->input(0), n->input(1)};
  if (bias) in.push_back(bias);
  if (IsMatMulT(n) && n->input(2)) in.push_back(n->input(2));
  if (relu_mask) {
    in.resize(3);
    in.push_back(relu_mask);
  }
  Node* m = g.AddNode("MatMulT", in, {hint}, "ai.amp");
  if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
  if (IsMatMulT(n)) {
    for (const auto& [name, attr] : n->attributes()) m->SetAttr(name, attr);
  } else {
    m->SetAttr("transA", Attribute::Int(n->GetInt("transA", 0) != 0 ? 1 : 0));
    m->SetAttr("transB", Attribute::Int(n->GetInt("transB", 0) != 0 ? 1 : 0));
    if (float alpha = n->GetFloat("alpha", 1.0f); alpha != 1.0f)
      m->SetAttr("alpha", Attribute::Float(alpha));
  }
  m->set_precision(n->precision().compute, n->precision().rule);
  m->set_name(n->name());
  g.MoveBefore(m, n);
  return m;
}

// The epilogue's shape rules (ops/gemm.cc): one matrix as B, and A 2-D when
// it is read transposed.
bool EpilogueShapes(const Node* n) {
  auto a = StaticDimsOf(n->input(0)), b = StaticDimsOf(n->input(1));
  bool ta = n->GetInt("transA", 0) != 0;
  return a && b && b->size() == 2 && !a->empty() && (!ta || a->size() == 2);
}

// The value a ReduceSum adds up, seen through an exact widening Cast: a
// half or FP32 value cast to FP32.
Value* SummedSource(Value* x) {
  Node* c = x->producer();
  if (IsDefaultOp(c, "Cast") && x->dtype() == DType::kFloat32) {
    DType from = c->input(0)->dtype();
    if (from == DType::kFloat16 || from == DType::kBFloat16 || from == DType::kFloat32)
      return c->input(0);
  }
  return x;
}

}  // namespace

StatusOr<bool> FuseGemmEpilogue::Run(Model& model) {
  Graph& g = *model.graph;
  PinnedValues pinned(model, keep_);
  auto private_value = [&](const Value* v) { return pinned.Private(v); };
  bool changed = false;

  // Gemm's bias: cuBLASLt adds it in the epilogue (a broadcast copy of C
  // into the output, then beta = 1, is a kernel more).
  for (Node* n : g.nodes()) {
    if (!IsDefaultOp(n, "Gemm") || !n->input(2) || n->GetFloat("beta", 1.0f) != 1.0f) continue;
    Value* y = n->output(0);
    Value* bias = n->input(2);
    auto yd = StaticDimsOf(y), bd = StaticDimsOf(bias), ad = StaticDimsOf(n->input(0)),
         wd = StaticDimsOf(n->input(1));
    if (!yd || !bd || !ad || !wd || yd->size() != 2 || bd->size() != 1 || (*bd)[0] != (*yd)[1] ||
        bias->dtype() != y->dtype())
      continue;
    Node* m = MakeMatMulT(model, n, bias, y->name() + "_bias");
    AMP_RETURN_IF_ERROR(g.Substitute({{y, m->output(0)}}, {n}));
    changed = true;
  }

  // ReLU after a GEMM (and its bias).
  for (Node* r : g.nodes()) {
    if (!IsDefaultOp(r, "Relu")) continue;
    Value* y = r->input(0);
    Node* p = y->producer();
    if (!FreeGemm(p) || !private_value(y) || !EpilogueShapes(p)) continue;
    Node* m = MakeMatMulT(model, p, nullptr, r->output(0)->name() + "_relu");
    m->SetAttr("activation", Attribute::String("relu"));
    AMP_RETURN_IF_ERROR(g.Substitute({{r->output(0), m->output(0)}}, {r, p}));
    changed = true;
  }

  // ReLU's gradient of a GEMM's result, Where(Greater(r, 0), g, 0) with r
  // a GEMM's ReLU: the forward GEMM also writes the ReLU's bit mask, the
  // backward GEMM applies it (cuBLASLt's RELU_AUX and DRELU).
  for (Node* w : g.nodes()) {
    if (!IsDefaultOp(w, "Where")) continue;
    Node* gt = w->input(0)->producer();
    Value* grad = w->input(1);
    Node* gp = grad->producer();
    auto zero = [](const Value* v) {
      auto c = ConstantNodeScalar(v);
      return c && *c == 0.0;
    };
    if (!IsDefaultOp(gt, "Greater") || !private_value(w->input(0)) || !zero(gt->input(1)) ||
        !zero(w->input(2)) || !private_value(grad) || !FreeGemm(gp) || gp->input(2) ||
        !EpilogueShapes(gp))
      continue;
    Value* r = gt->input(0);
    Node* fwd = r->producer();
    if (!IsMatMulT(fwd) || fwd->GetString("activation", "") != "relu" || fwd->output(0) != r ||
        !StaticDimsOf(r) || StaticDimsOf(r) != StaticDimsOf(grad) ||
        StaticDimsOf(grad) != StaticDimsOf(w->output(0)) || grad->dtype() != r->dtype())
      continue;
    if (fwd->GetInt("relu_mask", 0) == 0) {
      Node* with_mask = MakeMatMulT(model, fwd, nullptr, r->name() + "_masked");
      with_mask->SetAttr("relu_mask", Attribute::Int(1));
      Value* mask = g.AddNodeOutput(with_mask, r->name() + "_relu_mask");
      // (ops/gemm.cc's mask shape: the rows, and 16 bytes per 128 columns.)
      auto rd = *StaticDimsOf(r);
      int64_t rows = 1;
      for (size_t i = 0; i + 1 < rd.size(); ++i) rows *= rd[i];
      mask->mutable_type() =
          TensorType{DType::kUInt8, ShapeFromDims({rows, (rd.back() + 127) / 128 * 16})};
      AMP_RETURN_IF_ERROR(g.Substitute({{r, with_mask->output(0)}}, {fwd}));
      fwd = with_mask;
    }
    Node* m = MakeMatMulT(model, gp, nullptr, w->output(0)->name() + "_drelu", fwd->output(1));
    m->SetAttr("activation", Attribute::String("drelu"));
    AMP_RETURN_IF_ERROR(g.Substitute({{w->output(0), m->output(0)}}, {w, gt, gp}));
    changed = true;
  }

  // The bias gradient: a ReduceSum of a weight-gradient GEMM's first operand
  // over the axes the GEMM reduces.
  std::set<const Node*> erased;  // (the list below still holds them)
  for (Node* s : g.nodes()) {
    // (The sum may be named or a graph output: the GEMM's output takes its
    // name and readers.)
    if (erased.count(s) || !IsDefaultOp(s, "ReduceSum")) continue;
    Value* x = s->input(0);
    Value* src = SummedSource(x);
    auto sd = StaticDimsOf(src);
    auto out = StaticDimsOf(s->output(0));
    if (!sd || !out || sd->size() < 2) continue;
    auto axes = ConstantReduceAxes(*s, static_cast<int64_t>(sd->size()));
    if (!axes) continue;
    // A 2-D weight-gradient GEMM reading `operand` (src, or a view of it) as
    // input `side`, with nothing else in its epilogue, storing the sum's type.
    Node* gemm = nullptr;
    int side = 0;
    auto candidate = [&](const Use& u) {
      Node* n = u.node;
      if (!FreeGemm(n) || u.index > 1 || n->HasAttr("activation") || n->input(2) ||
          n->input(0) == n->input(1) || n->output(0)->dtype() != s->output(0)->dtype())
        return false;
      auto ad = StaticDimsOf(n->input(0)), bd = StaticDimsOf(n->input(1));
      return ad && bd && ad->size() == 2 && bd->size() == 2;
    };
    // The axis of the stored operand that the product reduces over.
    auto k_axis = [](const Use& u) -> int64_t {
      bool t = u.node->GetInt(u.index == 0 ? "transA" : "transB", 0) != 0;
      return u.index == 0 ? (t ? 0 : 1) : (t ? 1 : 0);
    };
    for (const Use& u : src->uses()) {
      if (sd->size() == 2 && candidate(u) && *axes == std::vector<int64_t>{k_axis(u)}) {
        gemm = u.node;
        side = u.index;
        break;
      }
      // A 3-D (or higher) gradient flattened to rows, summed over all but
      // its last axis: the GEMM reduces over those rows.
      if (IsDefaultOp(u.node, "Reshape") && u.index == 0) {
        auto rd = StaticDimsOf(u.node->output(0));
        std::vector<int64_t> lead(sd->size() - 1);
        for (size_t i = 0; i < lead.size(); ++i) lead[i] = static_cast<int64_t>(i);
        if (!rd || rd->size() != 2 || rd->back() != sd->back() || *axes != lead) continue;
        for (const Use& ru : u.node->output(0)->uses())
          if (candidate(ru) && k_axis(ru) == 0) {
            gemm = ru.node;
            side = ru.index;
            break;
          }
        if (gemm) break;
      }
    }
    if (!gemm) continue;
    Node* m = MakeMatMulT(model, gemm, nullptr, gemm->output(0)->name() + "_bgrad");
    m->SetAttr("bias_grad", Attribute::String(side == 0 ? "A" : "B"));
    Value* db = g.AddNodeOutput(m, s->output(0)->name() + "_bgrad");
    Value* sum = db;
    auto gd = StaticDimsOf(gemm->output(0));
    int64_t rows = side == 0 ? gd->front() : gd->back();
    if (*out != std::vector<int64_t>{rows}) {
      // keepdims: the sum's own shape, a view of the vector.
      Value* dims = g.AddConstant(
          s->output(0)->name() + "_shape",
          Tensor::FromVector(DType::kInt64, {static_cast<int64_t>(out->size())}, *out));
      Node* view = g.AddNode("Reshape", {db, dims}, {s->output(0)->name() + "_view"});
      view->set_precision(s->precision().compute, s->precision().rule);
      g.MoveBefore(dims->producer(), gemm);
      g.MoveBefore(view, gemm);
      sum = view->output(0);
    }
    db->mutable_type() = TensorType{m->output(0)->dtype(), ShapeFromDims({rows})};
    Node* cast = x != src ? x->producer() : nullptr;
    AMP_RETURN_IF_ERROR(
        g.Substitute({{gemm->output(0), m->output(0)}, {s->output(0), sum}}, {gemm, s}));
    erased.insert(gemm);
    if (cast && cast->output(0)->uses().empty() && !pinned(cast->output(0))) {
      erased.insert(cast);
      g.EraseNode(cast);
    }
    changed = true;
  }

  if (!changed) return false;
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
