#include "passes/rematerialize.h"

#include <limits>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "compiler/shape_inference.h"
#include "ops/fused_elementwise.h"

namespace amp {
namespace {

constexpr int kMaxDepth = 3;

// An op that is cheap to compute again inside a fused kernel: one a fused
// program may hold (no randomness, no reductions), on the types a program
// holds, with one output.
bool Cheap(const Node* n) {
  if (!n || !(n->domain().empty() || n->domain() == "ai.onnx") || n->num_outputs() != 1 ||
      !FindFusableOp(n->op_type()) || !FusableType(n->output(0)->dtype()))
    return false;
  for (const Value* in : n->inputs())
    if (!in || !FusableType(in->dtype())) return false;
  return true;
}

// Values this small cost no memory worth a recomputation.
constexpr int64_t kMinElements = 1024;

bool SameStaticShape(const Value* a, const Value* b) {
  auto da = a->type().shape ? StaticDims(*a->type().shape) : std::nullopt;
  auto db = b->type().shape ? StaticDims(*b->type().shape) : std::nullopt;
  if (!da || !db || *da != *db) return false;
  int64_t n = 1;
  for (int64_t d : *da) n *= d;
  return n >= kMinElements;
}

class Remat {
 public:
  Remat(Model& m, size_t distance) : g_(*m.graph), distance_(distance) {
    named_ = m.training.NamedValues();
  }

  // One recomputation; false when there is none left to make.
  StatusOr<bool> Once() {
    Index();
    for (Node* b : order_) {
      // Only into a reader the copy fuses with (an elementwise op of the
      // same shape): the recomputation then costs no launch and no memory.
      if (!Cheap(b)) continue;
      for (size_t i = 0; i < b->num_inputs(); ++i) {
        Value* v = b->input(i);
        Node* n = v ? v->producer() : nullptr;
        if (!Cheap(n) || v->is_graph_output() || named_.count(v->name())) continue;
        if (!SameStaticShape(v, b->output(0))) continue;
        if (pos_.at(b) - pos_.at(n) <= distance_) continue;
        if (!Plannable(n, pos_.at(b), kMaxDepth)) continue;
        Value* copy = Clone(n, b);
        b->SetInput(i, copy);
        return true;
      }
    }
    return false;
  }

 private:
  void Index() {
    order_ = g_.nodes();
    pos_.clear();
    last_use_.clear();
    for (size_t k = 0; k < order_.size(); ++k) pos_[order_[k]] = k;
    for (Node* n : order_)
      for (Value* out : n->outputs()) {
        size_t last = 0;
        for (const Use& u : out->uses()) last = std::max(last, pos_.at(u.node));
        if (out->is_graph_output() || named_.count(out->name()))
          last = std::numeric_limits<size_t>::max();
        last_use_[out] = last;
      }
  }

  // Whether `v` may be read at position `at` without keeping it alive
  // much longer: no producer (an input or initializer), a Constant, or a
  // value read at or after `at` anyway, or at most `distance` nodes before
  // (GELU's x, last read just before the Erf gradient that reads x/sqrt(2):
  // a short extension, against a value freed for more than `distance`).
  bool Available(const Value* v, size_t at) const {
    const Node* p = v->producer();
    if (!p || (p->op_type() == "Constant" && p->domain().empty())) return true;
    auto it = last_use_.find(v);
    return it != last_use_.end() && it->second + distance_ >= at;
  }

  // Whether n can be computed again at `at` from available values, through
  // at most `depth` cheap ops.
  bool Plannable(const Node* n, size_t at, int depth) const {
    if (!Cheap(n) || depth == 0) return false;
    for (const Value* in : n->inputs()) {
      if (!in) return false;
      if (Available(in, at)) continue;
      if (!Plannable(in->producer(), at, depth - 1)) return false;
    }
    return true;
  }

  // A copy of n (and of the inputs that are not available) just before
  // `before`.
  Value* Clone(Node* n, Node* before) {
    size_t at = pos_.at(before);
    std::vector<Value*> inputs;
    for (Value* in : n->inputs())
      inputs.push_back(Available(in, at) ? in : Clone(in->producer(), before));
    Value* v = n->output(0);
    Node* c = g_.AddNode(n->op_type(), inputs, {v->name() + "_remat"}, n->domain());
    for (const auto& [name, attr] : n->attributes()) c->SetAttr(name, attr);
    c->set_precision(n->precision().compute, n->precision().rule);
    c->set_name(n->name().empty() ? "" : n->name() + "/remat");
    c->output(0)->set_type(v->type());
    g_.MoveBefore(c, before);
    return c->output(0);
  }

  Graph& g_;
  size_t distance_;
  std::set<std::string> named_;
  std::vector<Node*> order_;
  std::unordered_map<const Node*, size_t> pos_;
  std::unordered_map<const Value*, size_t> last_use_;
};

}  // namespace

StatusOr<bool> Rematerialize::Run(Model& model) {
  Remat r(model, distance_);
  bool changed = false;
  // (Each round makes one recomputation and re-indexes: bounded by the
  // number of (reader, value) pairs.)
  for (int round = 0; round < 100000; ++round) {
    AMP_ASSIGN_OR_RETURN(bool made, r.Once());
    if (!made) break;
    changed = true;
  }
  if (!changed) return false;
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
