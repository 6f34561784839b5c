#include "compiler/legalize.h"

#include <limits>
#include <optional>
#include <vector>

#include "compiler/const_eval.h"

namespace amp {
namespace {

std::optional<Tensor> ConstantOf(const Value* v) {
  if (!v) return std::nullopt;
  if (v->has_initializer()) return *v->initializer();
  return ConstantNodeTensor(v);
}

Tensor Ints(std::vector<int64_t> v) {
  auto n = static_cast<int64_t>(v.size());
  return Tensor::FromVector<int64_t>(DType::kInt64, {n}, v);
}

// [start, end) of piece `k` (0-based, or negative for pieces of size 1),
// and whether the piece's axis is squeezed away.
struct Piece {
  int64_t start, end;
  bool squeeze;
};

StatusOr<Piece> PieceOf(const Node& split, const std::optional<Tensor>& sizes, int64_t k) {
  const int64_t kEnd = std::numeric_limits<int64_t>::max();
  if (!sizes) {  // pieces of size 1; keepdims = 0 squeezes the axis
    bool squeeze = split.GetInt("keepdims", 1) == 0;
    return Piece{k, k == -1 ? kEnd : k + 1, squeeze};
  }
  if (sizes->dims().empty()) {  // a scalar: chunks of that size, the last one shorter
    int64_t c = sizes->GetInt(0);
    if (c <= 0) return InvalidArgument(split.Describe(), ": split size ", c, " is not positive");
    if (k < 0)
      return Unimplemented(split.Describe(), ": SequenceAt at negative position ", k,
                           " of chunks needs the input's size; export with a positive index");
    return Piece{k * c, (k + 1) * c, false};
  }
  int64_t n = sizes->num_elements();
  if (k < 0) k += n;
  if (k < 0 || k >= n)
    return InvalidArgument(split.Describe(), ": SequenceAt position is outside the ", n, " pieces");
  int64_t start = 0;
  for (int64_t i = 0; i < k; ++i) start += sizes->GetInt(i);
  return Piece{start, start + sizes->GetInt(k), false};
}

Status LegalizeSplitToSequence(Graph& g, Node* split) {
  Value* seq = split->output(0);
  std::vector<Node*> readers;
  for (const auto& u : seq->uses()) {
    if (u.node->op_type() != "SequenceAt" || !u.node->domain().empty() || u.index != 0)
      return Unimplemented(split->Describe(), ": its sequence is read by ", u.node->Describe(),
                           "; amp has no sequence type and takes SplitToSequence only when "
                           "SequenceAt reads it at constant positions");
    readers.push_back(u.node);
  }
  if (seq->is_graph_output())
    return Unimplemented(split->Describe(), ": a sequence is a graph output");
  std::optional<Tensor> sizes;
  if (split->num_inputs() > 1 && split->input(1)) {
    sizes = ConstantOf(split->input(1));
    if (!sizes || !IsInteger(sizes->dtype()) || sizes->dims().size() > 1)
      return Unimplemented(split->Describe(),
                           ": its split sizes are not a constant integer scalar or list");
  }
  const int64_t axis = split->GetInt("axis", 0);
  for (Node* at : readers) {
    auto pos = ConstantOf(at->input(1));
    if (!pos || pos->num_elements() != 1 || !IsInteger(pos->dtype()))
      return Unimplemented(at->Describe(), ": SequenceAt's position is not a constant integer");
    AMP_ASSIGN_OR_RETURN(Piece p, PieceOf(*split, sizes, pos->GetInt(0)));
    Value* axes = g.AddConstant("legalize_axes", Ints({axis}));
    Node* slice = g.AddNode("Slice",
                            {split->input(0), g.AddConstant("legalize_starts", Ints({p.start})),
                             g.AddConstant("legalize_ends", Ints({p.end})), axes},
                            {at->output(0)->name() + "_slice"});
    Value* piece = slice->output(0);
    if (p.squeeze)
      piece = g.AddNode("Squeeze", {piece, axes}, {piece->name() + "_squeeze"})->output(0);
    Value* old = at->output(0);
    std::string name = old->name();
    g.ReplaceAllUsesWith(old, piece);
    g.EraseNode(at);
    AMP_RETURN_IF_ERROR(g.RenameValue(piece, name));
  }
  g.EraseNode(split);
  return Status::Ok();
}

}  // namespace

Status LegalizeImport(Model& model) {
  Graph& g = *model.graph;
  std::vector<Node*> splits;
  for (Node* n : g.nodes())
    if (n->domain().empty() && n->op_type() == "SplitToSequence") splits.push_back(n);
  if (splits.empty()) return Status::Ok();
  for (Node* s : splits) AMP_RETURN_IF_ERROR(LegalizeSplitToSequence(g, s));
  return g.TopologicalSort();
}

Status LegalizeTyped(Model& model) {
  Graph& g = *model.graph;
  bool changed = false;
  for (Node* n : g.nodes()) {
    if (!n->domain().empty() || n->op_type() != "CastLike" || n->num_inputs() != 2 || !n->input(1))
      continue;
    DType to = n->input(1)->dtype();
    if (to == DType::kUndefined) continue;  // left as it is: inference names it
    Node* cast = g.AddNode("Cast", {n->input(0)}, {n->output(0)->name() + "_cast"});
    cast->SetAttr("to", Attribute::Int(static_cast<int64_t>(to)));
    if (const Attribute* sat = n->FindAttr("saturate")) cast->SetAttr("saturate", *sat);
    Value* old = n->output(0);
    std::string name = old->name();
    cast->output(0)->set_type(old->type());
    g.ReplaceAllUsesWith(old, cast->output(0));
    g.EraseNode(n);
    AMP_RETURN_IF_ERROR(g.RenameValue(cast->output(0), name));
    changed = true;
  }
  return changed ? g.TopologicalSort() : Status::Ok();
}

}  // namespace amp
