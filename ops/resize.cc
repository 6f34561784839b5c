// Resize.
//
// Each op's facts in one record (ops/op_def.h): arity, type and shape
// inference, precision class, shape-like inputs, gradient rule or why there
// is none. Kernels are the backends' (kernels/cpu, kernels/cuda).
#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <set>

#include "compiler/const_eval.h"
#include "ops/families.h"
#include "ops/grad_builder.h"
#include "ops/infer_util.h"

namespace amp {
namespace {

using Ctx = InferenceContext;
using G = GradBuilder;

// ---- type and shape inference ----

Status InferResize(Ctx& c) {
  const auto& x = c.input_shape(0);
  std::optional<Shape> out;
  if (x) {
    out = Shape(x->size(), Dim());
    if (c.has_input(3)) {
      if (auto sizes = ConstInts(c, 3); sizes && sizes->size() == x->size())
        out = ShapeFromDims(*sizes);
    } else if (c.has_input(2) && c.constant(2) &&
               c.constant(2)->num_elements() == static_cast<int64_t>(x->size())) {
      const Tensor* sc = c.constant(2);
      for (size_t k = 0; k < x->size(); ++k)
        if ((*x)[k].is_static())
          (*out)[k] = Dim(static_cast<int64_t>(std::floor((*x)[k].value() * sc->GetDouble(k))));
    }
  }
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

// ---- gradients ----

// (none: see each record's no_grad)

}  // namespace

std::vector<OpDef> ResizeOps() {
  return {
      {.op_type = "Resize",
       .arity = {1, 4, 1, 1},
       .infer = InferResize,
       .precision = {OpClass::kFp32, "coordinate arithmetic in FP32"},
       .shape_inputs = {1, 2, 3},
       .no_grad = "no gradient rule yet"},
  };
}

}  // namespace amp
