#include "passes/fuse_elementwise.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "compiler/shape_inference.h"
#include "ops/fused_elementwise.h"

namespace amp {
namespace {

// The op's output dims when the node can be an instruction: a fusable op of
// the default domain with its arity, every input present and of a type and
// static shape the program holds, one output of such a type and a static,
// non-empty shape.
std::optional<std::vector<int64_t>> FusableDims(const Node& n) {
  if (!n.domain().empty() && n.domain() != "ai.onnx") return std::nullopt;
  const FusableOp* f = FindFusableOp(n.op_type());
  if (!f || n.num_outputs() != 1) return std::nullopt;
  int arity = static_cast<int>(n.num_inputs());
  if (arity < f->min_args || arity > f->max_args) return std::nullopt;
  for (const Value* in : n.inputs())
    if (!in || !FusableType(in->dtype()) || !StaticDimsOf(in)) return std::nullopt;
  const Value* out = n.output(0);
  if (!FusableType(out->dtype())) return std::nullopt;
  auto dims = StaticDimsOf(out);
  if (!dims) return std::nullopt;
  int64_t numel = 1;
  for (int64_t d : *dims) numel *= d;
  if (numel <= 0) return std::nullopt;
  for (const Value* in : n.inputs())
    if (StaticDimsOf(in)->size() > dims->size()) return std::nullopt;
  return dims;
}

struct Group {
  std::vector<Node*> members;  // in schedule order; the last is the root
  std::vector<int64_t> dims;
  bool alive = true;
};

}  // namespace

StatusOr<bool> FuseElementwise::Run(Model& model) {
  Graph& g = *model.graph;
  // A Cast of an elementwise result moves up to just after it, over at most
  // kCastHoist nodes (a bias gradient's ReduceSum of the FP32 value before
  // the half copy the GEMMs read), so that it joins the producer's chain as
  // one more result instead of a launch of its own. Only the order changes.
  constexpr size_t kCastHoist = 3;
  bool hoisted = false;
  for (Node* c : g.nodes()) {
    if (!IsDefaultOp(c, "Cast") || !FusableDims(*c)) continue;
    Node* p = c->input(0)->producer();
    if (!p || !FusableDims(*p) || *FusableDims(*p) != *FusableDims(*c)) continue;
    // (The current order: earlier moves changed it.)
    std::vector<Node*> now = g.nodes();
    size_t from = std::find(now.begin(), now.end(), p) - now.begin();
    size_t to = std::find(now.begin(), now.end(), c) - now.begin();
    if (to <= from + 1 || to - from - 1 > kCastHoist) continue;
    g.MoveBefore(c, now[from + 1]);
    hoisted = true;
  }
  std::vector<Node*> order = g.nodes();
  std::unordered_map<const Node*, size_t> pos;
  for (size_t i = 0; i < order.size(); ++i) pos[order[i]] = i;
  std::unordered_map<const Node*, int> group_of;
  std::vector<Group> groups;

  // Values the chain's members read from outside the chain.
  auto external_inputs = [&](const std::vector<int>& ids, const Node* extra) {
    std::unordered_set<const Node*> inside;
    for (int id : ids)
      for (const Node* m : groups[id].members) inside.insert(m);
    if (extra) inside.insert(extra);
    std::unordered_set<const Value*> ext;
    for (const Node* m : inside)
      for (const Value* in : m->inputs())
        if (!in->producer() || !inside.count(in->producer())) ext.insert(in);
    return ext.size();
  };
  // Whether n may join the union of `ids`: no reader outside the union reads
  // a member's value before n's place, and the program stays in bounds.
  auto can_join = [&](const std::vector<int>& ids, const Node* n) {
    size_t instrs = 1;
    for (int id : ids) instrs += groups[id].members.size();
    if (instrs > static_cast<size_t>(FusedProgram::kMaxInstrs)) return false;
    std::unordered_set<int> set(ids.begin(), ids.end());
    for (int id : ids)
      for (const Node* m : groups[id].members)
        for (const Value* out : m->outputs())
          for (const Use& u : out->uses()) {
            if (u.node == n) continue;
            auto it = group_of.find(u.node);
            if (it != group_of.end() && set.count(it->second)) continue;
            if (pos.at(u.node) < pos.at(n)) return false;
          }
    return external_inputs(ids, n) <= static_cast<size_t>(FusedProgram::kMaxInputs);
  };

  for (Node* n : order) {
    auto dims = FusableDims(*n);
    if (!dims) continue;
    std::vector<int> cands;
    for (const Value* in : n->inputs()) {
      auto it = in->producer() ? group_of.find(in->producer()) : group_of.end();
      if (it == group_of.end() || groups[it->second].dims != *dims) continue;
      if (std::find(cands.begin(), cands.end(), it->second) == cands.end())
        cands.push_back(it->second);
    }
    std::vector<int> join;
    if (!cands.empty() && can_join(cands, n)) {
      join = cands;
    } else {
      for (int c : cands)
        if (can_join({c}, n)) {
          join = {c};
          break;
        }
    }
    if (join.empty()) {
      group_of[n] = static_cast<int>(groups.size());
      groups.push_back({{n}, *dims});
      continue;
    }
    Group& into = groups[join[0]];
    for (size_t k = 1; k < join.size(); ++k) {
      Group& other = groups[join[k]];
      for (Node* m : other.members) {
        into.members.push_back(m);
        group_of[m] = join[0];
      }
      other.members.clear();
      other.alive = false;
    }
    into.members.push_back(n);
    group_of[n] = join[0];
    std::sort(into.members.begin(), into.members.end(),
              [&](const Node* a, const Node* b) { return pos.at(a) < pos.at(b); });
  }

  std::set<std::string, std::less<>> named = keep_;
  for (const std::string& s : model.training.NamedValues()) named.insert(s);
  std::unordered_set<const Value*> graph_outputs(g.outputs().begin(), g.outputs().end());

  bool changed = false;
  for (Group& grp : groups) {
    if (!grp.alive || grp.members.size() < 2) continue;
    std::unordered_set<const Node*> inside(grp.members.begin(), grp.members.end());
    FusedProgram p;
    std::vector<Value*> inputs;
    std::unordered_map<const Value*, int> reg;
    for (const Node* m : grp.members)
      for (Value* in : m->inputs())
        if ((!in->producer() || !inside.count(in->producer())) && !reg.count(in)) {
          reg[in] = static_cast<int>(inputs.size());
          inputs.push_back(in);
        }
    p.num_inputs = static_cast<int>(inputs.size());
    std::vector<Value*> outputs;
    for (const Node* m : grp.members) {
      FusedInstr in;
      in.op = m->op_type();
      in.type = m->output(0)->dtype();
      for (size_t j = 0; j < m->num_inputs(); ++j) in.args[j] = reg.at(m->input(j));
      if (const FusableOp* f = FindFusableOp(in.op); f->params) f->params(*m, in.params);
      Value* out = m->output(0);
      reg[out] = p.num_inputs + static_cast<int>(p.instrs.size());
      p.instrs.push_back(std::move(in));
      bool external = graph_outputs.count(out) || named.count(out->name());
      for (const Use& u : out->uses()) external |= !inside.count(u.node);
      if (external) {
        p.results.push_back(reg[out]);
        outputs.push_back(out);
      }
    }
    if (outputs.empty()) continue;
    Node* root = grp.members.back();
    std::vector<std::string> names;
    for (const Value* v : outputs) names.push_back(v->name() + "_fused");
    Node* fused = g.AddNode("FusedElementwise", inputs, names, "ai.amp");
    if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
    EncodeFusedProgram(p, *fused);
    fused->set_name(root->name().empty() ? "" : root->name() + "/fused");
    fused->set_precision(root->precision().compute, root->precision().rule);
    g.MoveBefore(fused, root);  // the chain's place in the schedule
    std::vector<std::string> original;
    for (size_t k = 0; k < outputs.size(); ++k) {
      original.push_back(outputs[k]->name());
      g.ReplaceAllUsesWith(outputs[k], fused->output(k));
    }
    for (auto it = grp.members.rbegin(); it != grp.members.rend(); ++it) g.EraseNode(*it);
    // The results keep their names (the step's description may name them).
    for (size_t k = 0; k < outputs.size(); ++k)
      AMP_RETURN_IF_ERROR(g.RenameValue(fused->output(k), original[k]));
    changed = true;
  }
  if (!changed) return hoisted;
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
