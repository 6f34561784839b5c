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

// Nearest-neighbour upsampling by whole factors (F.interpolate(scale_factor=k,
// mode="nearest"), FPN and UNet decoders): each input element is copied to a
// block of k_0 x k_1 x ... outputs, so its gradient is that block's sum:
// dy [.., D*k, ..] reshaped to [.., D, k, ..] and summed over the k axes.
// The coordinate modes that map to whole blocks: asymmetric with floor, and
// half_pixel / pytorch_half_pixel with either rounding (no ties at whole
// factors). Other modes and linear/cubic interpolation have no rule yet.
Status GradResize(G& b) {
  const Node& n = b.node();
  const std::string mode = n.GetString("mode", "nearest");
  const std::string coord = n.GetString("coordinate_transformation_mode", "half_pixel");
  const std::string nearest = n.GetString("nearest_mode", "round_prefer_floor");
  const bool blocks =
      mode == "nearest" && ((coord == "asymmetric" && nearest == "floor") ||
                            ((coord == "half_pixel" || coord == "pytorch_half_pixel") &&
                             (nearest == "round_prefer_floor" || nearest == "round_prefer_ceil")));
  if (!blocks)
    return Unimplemented(n.Describe(), ": Resize's gradient covers nearest upsampling by whole ",
                         "factors (asymmetric/floor or half_pixel/round); this one is mode '", mode,
                         "', coordinates '", coord, "', nearest_mode '", nearest, "'");
  auto xd = StaticDims(ShapeOrDie(b.x(0)));
  auto yd = StaticDims(ShapeOrDie(b.y(0)));
  if (!xd || !yd || xd->size() != yd->size())
    return Unimplemented(n.Describe(), ": Resize's gradient needs static shapes");
  std::vector<int64_t> split, axes;
  for (size_t k = 0; k < xd->size(); ++k) {
    int64_t in = (*xd)[k], out = (*yd)[k];
    if (in <= 0 || out % in != 0)
      return Unimplemented(n.Describe(), ": Resize's gradient needs whole upsampling factors (dim ",
                           k, ": ", in, " -> ", out, ")");
    split.push_back(in);
    split.push_back(out / in);
    axes.push_back(static_cast<int64_t>(2 * k + 1));
  }
  Value* r = b.Op("Reshape", {b.dy(0), b.Ints(split)});
  b.dx.assign(n.num_inputs(), nullptr);
  b.dx[0] = b.Reduce("ReduceSum", r, axes, false);
  return Status::Ok();
}

}  // namespace

std::vector<OpDef> ResizeOps() {
  return {
      {.op_type = "Resize",
       .arity = {1, 4, 1, 1},
       .infer = InferResize,
       .precision = {OpClass::kFp32, "coordinate arithmetic in FP32"},
       .shape_inputs = {1, 2, 3},
       .grad = GradResize,
       .nondiff_inputs = {1, 2, 3}},
  };
}

}  // namespace amp
