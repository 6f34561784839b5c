// fold-casts: removes Casts that cannot change a result.
//   * a Cast to the type its input already has goes away;
//   * Cast(Cast(x)) whose inner Cast widens exactly (fp16 -> fp32, fp32 ->
//     double, int32 -> int64, ...) reads x directly, and disappears when it
//     then converts x to x's own type;
//   * Cast(L(Cast(x))) whose inner Cast widens x exactly and casts back to
//     x's type, with only layout ops L (Transpose, Reshape, Squeeze,
//     Unsqueeze, Flatten, Identity) between, each read only by the next:
//     the layout ops move x itself and both Casts go (not where that makes
//     a half batch Transpose into a MatMul, which onnxruntime crashes on:
//     specialization, after fuse-attention, folds those);
//   * several Casts of one value to one type become one.
// A narrowing Cast (fp32 -> fp16, a user's own or amp's) is never dropped:
// that would change results. A Cast that produces a graph output keeps it.
#pragma once

#include "passes/pass.h"

namespace amp {

class FoldCasts : public Pass {
 public:
  static constexpr std::string_view kName = "fold-casts";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

// True when every value of `from` is exactly representable in `to`.
bool IsExactWidening(DType from, DType to);

// Ops that move every element of their input once without computing
// (Transpose, Reshape, Squeeze, Unsqueeze, Flatten, Identity): a Cast
// commutes with them.
bool IsPureLayout(const Node& n);

}  // namespace amp
