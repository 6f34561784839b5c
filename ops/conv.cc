// Convolutions: Conv (N-D forward and gradients) and ConvTranspose.
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

Status InferConv(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2}));
  const auto& x = c.input_shape(0);
  const auto& w = c.input_shape(1);
  if (!x || !w) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  if (w->size() != x->size())
    return c.Error("weight rank ", w->size(), " differs from input rank ", x->size());
  if (x->size() < 3) return c.Error("Conv input must have rank >= 3 (N, C, spatial...)");
  int64_t group = c.node().GetInt("group", 1);
  if (group <= 0) return c.Error("group must be positive");
  if ((*x)[1].is_static() && (*w)[1].is_static() && (*x)[1].value() != (*w)[1].value() * group)
    return c.Error("input has ", (*x)[1].value(), " channels but the weight expects ",
                   (*w)[1].value() * group);
  std::vector<int64_t> kernel = c.node().GetInts("kernel_shape");
  if (!c.node().HasAttr("kernel_shape")) {  // present but empty is an error below
    for (size_t i = 2; i < w->size(); ++i)
      kernel.push_back((*w)[i].is_static() ? (*w)[i].value() : 1);
  }
  // kernel_shape, when given, is the weight's spatial dims.
  if (kernel.size() != w->size() - 2)
    return c.Error("kernel_shape has ", kernel.size(), " entries for ", w->size() - 2,
                   " spatial dims");
  for (size_t i = 0; i < kernel.size(); ++i)
    if ((*w)[i + 2].is_static() && (*w)[i + 2].value() != kernel[i])
      return c.Error("kernel_shape[", i, "] is ", kernel[i], " but the weight's dim ", i + 2,
                     " is ", (*w)[i + 2].value());
  AMP_ASSIGN_OR_RETURN(Shape spatial, SpatialOut(c, *x, kernel, false));
  Shape out{(*x)[0], (*w)[0]};
  out.insert(out.end(), spatial.begin(), spatial.end());
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

// ai.amp ConvWeightGrad (fuse-conv-weight-grad): the weight gradient of a
// 2-D Conv with group 1 from its input x [N, C, H, W] and output gradient
// dy [N, O, Ho, Wo], the forward Conv's kernel_shape, strides, dilations
// and pads as attributes: dW [O, C, kh, kw] in x's type,
//   dW[o, c, i, j] = sum over n, h, w of x[n, c, h*s + i*d - p, w*s + j*d - p] dy[n, o, h, w]
// (what cuDNN's backward-filter convolution computes), rounded to x's type;
// with out_type, then stored in that wider float type (a Cast after it).
Status InferConvWeightGrad(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1}));
  const auto& x = c.input_shape(0);
  const auto& dy = c.input_shape(1);
  std::vector<int64_t> k = c.node().GetInts("kernel_shape");
  std::vector<int64_t> s = c.node().GetInts("strides", {1, 1});
  std::vector<int64_t> d = c.node().GetInts("dilations", {1, 1});
  std::vector<int64_t> p = c.node().GetInts("pads", {0, 0, 0, 0});
  if (k.size() != 2 || s.size() != 2 || d.size() != 2 || p.size() != 4)
    return c.Error("needs 2-D kernel_shape, strides, dilations and 4 pads");
  for (int64_t v : {k[0], k[1], s[0], s[1], d[0], d[1]})
    if (v < 1) return c.Error("kernel_shape, strides and dilations must be positive");
  if (!x || !dy) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  if (x->size() != 4 || dy->size() != 4) return c.Error("x and dy must be 4-D (N, C, H, W)");
  for (int i = 0; i < 2; ++i) {
    const Dim &in = (*x)[2 + i], &out = (*dy)[2 + i];
    if (in.is_static() && out.is_static() &&
        (in.value() + p[i] + p[2 + i] - d[i] * (k[i] - 1) - 1) / s[i] + 1 != out.value())
      return c.Error("dy's spatial dims ", ShapeToString(*dy), " are not the Conv output of x ",
                     ShapeToString(*x), " for these attributes");
  }
  if ((*x)[0].is_static() && (*dy)[0].is_static() && (*x)[0].value() != (*dy)[0].value())
    return c.Error("x and dy have different batch sizes");
  DType out = c.input_dtype(0);
  if (c.node().HasAttr("out_type")) {
    out = static_cast<DType>(c.node().GetInt("out_type", 0));
    if (out != DType::kFloat32 && out != c.input_dtype(0))
      return c.Error("out_type must be float32 or x's type");
  }
  c.SetOutput(0, out, Shape{(*dy)[1], (*x)[1], Dim(k[0]), Dim(k[1])});
  return Status::Ok();
}

Status InferConvTranspose(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2}));
  const auto& x = c.input_shape(0);
  const auto& w = c.input_shape(1);
  if (!x || !w || x->size() < 3 || w->size() != x->size()) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  size_t n = x->size() - 2;
  int64_t group = c.node().GetInt("group", 1);
  auto strides = c.node().GetInts("strides", std::vector<int64_t>(n, 1));
  auto dil = c.node().GetInts("dilations", std::vector<int64_t>(n, 1));
  auto pads = c.node().GetInts("pads", std::vector<int64_t>(2 * n, 0));
  auto outpad = c.node().GetInts("output_padding", std::vector<int64_t>(n, 0));
  auto output_shape = c.node().GetInts("output_shape");
  std::vector<int64_t> kernel = c.node().GetInts("kernel_shape");
  if (!c.node().HasAttr("kernel_shape"))
    for (size_t i = 2; i < w->size(); ++i)
      kernel.push_back((*w)[i].is_static() ? (*w)[i].value() : 1);
  if (strides.size() != n || dil.size() != n || pads.size() != 2 * n || outpad.size() != n ||
      kernel.size() != n)
    return c.Error("attribute lengths do not match the kernel rank ", n);
  for (size_t i = 0; i < n; ++i)
    if ((*w)[i + 2].is_static() && (*w)[i + 2].value() != kernel[i])
      return c.Error("kernel_shape[", i, "] is ", kernel[i], " but the weight's dim ", i + 2,
                     " is ", (*w)[i + 2].value());
  Shape out{(*x)[0], (*w)[1].is_static() ? Dim((*w)[1].value() * group) : Dim()};
  for (size_t i = 0; i < n; ++i) {
    std::string auto_pad = c.node().GetString("auto_pad", "NOTSET");
    if (!output_shape.empty()) {
      out.push_back(Dim(output_shape[output_shape.size() - n + i]));
    } else if ((auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") && (*x)[i + 2].is_static()) {
      out.push_back(Dim((*x)[i + 2].value() * strides[i]));  // the spec's SAME rule
    } else if ((*x)[i + 2].is_static()) {
      int64_t v = strides[i] * ((*x)[i + 2].value() - 1) + outpad[i] + (kernel[i] - 1) * dil[i] +
                  1 - pads[i] - pads[i + n];
      out.push_back(Dim(v));
    } else {
      out.push_back(Dim());
    }
  }
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

// ---- gradients ----

// A convolution's strides, dilations and pads over its `nd` spatial dims
// (the defaults where absent), checked against that count.
struct ConvGeometry {
  std::vector<int64_t> strides, dilations, pads;
};

StatusOr<ConvGeometry> ConvGeometryOf(const Node& n, size_t nd) {
  ConvGeometry g{n.GetInts("strides", std::vector<int64_t>(nd, 1)),
                 n.GetInts("dilations", std::vector<int64_t>(nd, 1)),
                 n.GetInts("pads", std::vector<int64_t>(2 * nd, 0))};
  if (g.strides.size() != nd || g.dilations.size() != nd || g.pads.size() != 2 * nd)
    return InvalidArgument(n.Describe(), ": strides, dilations or pads do not match its ", nd,
                           " spatial dims");
  return g;
}

// The bias's gradient: dy summed over the batch and the `nd` spatial axes.
Value* BiasGradient(GradBuilder& b, size_t nd) {
  std::vector<int64_t> axes = {0};
  for (size_t k = 0; k < nd; ++k) axes.push_back(static_cast<int64_t>(k + 2));
  return b.Reduce("ReduceSum", b.dy(0), axes, false);
}

// The weight gradient of Conv(in, W) [O, C/g, k..] for its output gradient
// dout. dW[o,c,i..] = sum_{n,h..} in[n,c,h*s+i*d..] dout[n,o,h..]: a Conv
// of in^T (C,N,H..) with dout^T (O,N,Ho..) as kernel, strides and
// dilations swapped.
//
// Grouped (depthwise too) in the same one Conv: with Cg = C/g and Og = O/g,
// in (N, g*Cg, H..) becomes the input (Cg, g*N, H..) and dout (N, g*Og,
// Ho..) the kernel (g*Og, N, Ho..), so group k's kernels read exactly group
// k's N batch channels (for g = 1 these are the plain transposes); the
// result (Cg, O, k..) is dW transposed.
StatusOr<Value*> ConvWeightGradient(G& b, Value* in, const std::vector<int64_t>& insp, Value* dout,
                                    const std::vector<int64_t>& outsp,
                                    const std::vector<int64_t>& wd, int64_t group,
                                    const std::vector<int64_t>& s, const std::vector<int64_t>& d,
                                    const std::vector<int64_t>& p) {
  const size_t nd = insp.size();
  std::vector<int64_t> kernel(wd.begin() + 2, wd.end()), swap01 = {1, 0}, full(nd);
  for (size_t k = 0; k < nd; ++k) swap01.push_back(static_cast<int64_t>(k + 2));
  bool cut = false;
  for (size_t k = 0; k < nd; ++k) {
    full[k] = (insp[k] + p[k] + p[k + nd] - s[k] * (outsp[k] - 1) - 1) / d[k] + 1;
    cut |= full[k] != kernel[k];
  }
  Value* input = nullptr;
  Value* kern = nullptr;
  if (group == 1) {
    input = b.Transpose(in, swap01);
    kern = b.Transpose(dout, swap01);
  } else {
    int64_t cg = wd[1], og = wd[0] / group;
    std::vector<int64_t> xg = {0, group, cg}, yg = {0, group, og}, perm_x = {2, 1, 0},
                         perm_y = {1, 2, 0}, xflat = {cg, -1}, yflat = {group * og, -1};
    for (size_t k = 0; k < nd; ++k) {
      xg.push_back(insp[k]);
      yg.push_back(outsp[k]);
      perm_x.push_back(static_cast<int64_t>(k + 3));
      perm_y.push_back(static_cast<int64_t>(k + 3));
      xflat.push_back(insp[k]);
      yflat.push_back(outsp[k]);
    }
    input =
        b.Op("Reshape", {b.Transpose(b.Op("Reshape", {in, b.Ints(xg)}), perm_x), b.Ints(xflat)});
    kern =
        b.Op("Reshape", {b.Transpose(b.Op("Reshape", {dout, b.Ints(yg)}), perm_y), b.Ints(yflat)});
  }
  Node* c = b.Make("Conv", {input, kern});
  if (group != 1) c->SetAttr("group", Attribute::Int(group));
  c->SetAttr("strides", Attribute::Ints(d));
  c->SetAttr("dilations", Attribute::Ints(s));
  c->SetAttr("pads", Attribute::Ints(p));
  Value* r = c->output(0);
  if (cut) {
    std::vector<int64_t> zeros(nd, 0), axes;
    for (size_t k = 0; k < nd; ++k) axes.push_back(static_cast<int64_t>(k + 2));
    r = b.Op("Slice", {r, b.Ints(zeros), b.Ints(kernel), b.Ints(axes)});
  }
  return b.Transpose(r, swap01);
}

// Any number of spatial dims (1-D audio, 2-D images, 3-D volumes).
Status GradConv(G& b) {
  const Node& n = b.node();
  const Shape& xs = ShapeOrDie(b.x(0));
  const Shape& ws = ShapeOrDie(b.x(1));
  const Shape& ys = ShapeOrDie(b.y(0));
  if (xs.size() < 3)
    return InvalidArgument(n.Describe(), ": Conv's input needs a spatial dim (rank >= 3)");
  const size_t nd = xs.size() - 2;
  int64_t group = n.GetInt("group", 1);
  if (n.GetString("auto_pad", "NOTSET") != "NOTSET")
    return Unimplemented(n.Describe(), ": auto_pad has no gradient yet; export with explicit pads");
  AMP_ASSIGN_OR_RETURN(ConvGeometry geo, ConvGeometryOf(n, nd));
  const std::vector<int64_t>&s = geo.strides, &d = geo.dilations, &p = geo.pads;
  auto wd = StaticDims(ws);
  bool spatial_static = true;
  for (size_t k = 0; k < nd; ++k) spatial_static &= xs[k + 2].is_static() && ys[k + 2].is_static();
  if (!wd || !spatial_static)
    return InvalidArgument(n.Describe(), ": the gradient needs static spatial and kernel dims");
  std::vector<int64_t> kernel(wd->begin() + 2, wd->end()), xsp, ysp;
  for (size_t k = 0; k < nd; ++k) {
    xsp.push_back(xs[k + 2].value());
    ysp.push_back(ys[k + 2].value());
  }
  b.dx.assign(n.num_inputs(), nullptr);
  if (b.wants(0)) {
    std::vector<int64_t> outpad(nd);
    bool any_outpad = false;
    for (size_t k = 0; k < nd; ++k) {
      outpad[k] = xsp[k] - (s[k] * (ysp[k] - 1) + (kernel[k] - 1) * d[k] + 1 - p[k] - p[k + nd]);
      any_outpad |= outpad[k] != 0;
    }
    // ConvTranspose reads Conv's [O, C/g, k...] weight as its own layout.
    Node* ct = b.Make("ConvTranspose", {b.dy(0), b.x(1)});
    if (group != 1) ct->SetAttr("group", Attribute::Int(group));
    ct->SetAttr("strides", Attribute::Ints(s));
    ct->SetAttr("dilations", Attribute::Ints(d));
    ct->SetAttr("pads", Attribute::Ints(p));
    ct->SetAttr("kernel_shape", Attribute::Ints(kernel));
    if (any_outpad) ct->SetAttr("output_padding", Attribute::Ints(outpad));
    b.dx[0] = ct->output(0);
  }
  if (b.wants(1)) {
    AMP_ASSIGN_OR_RETURN(b.dx[1],
                         ConvWeightGradient(b, b.x(0), xsp, b.dy(0), ysp, *wd, group, s, d, p));
  }
  if (n.num_inputs() > 2 && b.wants(2)) {
    b.dx[2] = BiasGradient(b, nd);
  }
  return Status::Ok();
}

// ConvTranspose(x, W) with W [C_in, C_out/g, k..] is the adjoint of
// Conv(., W): its input gradient is that Conv of dy, and its weight gradient
// Conv's weight gradient with the roles swapped (dy as the Conv's input, x
// as its output gradient), which comes out in W's own layout.
Status GradConvTranspose(G& b) {
  const Node& n = b.node();
  const Shape& xs = ShapeOrDie(b.x(0));
  const Shape& ys = ShapeOrDie(b.y(0));
  if (xs.size() < 3)
    return InvalidArgument(n.Describe(), ": ConvTranspose's input needs a spatial dim (rank >= 3)");
  const size_t nd = xs.size() - 2;
  if (n.GetString("auto_pad", "NOTSET") != "NOTSET" || n.HasAttr("output_shape"))
    return Unimplemented(n.Describe(), ": ConvTranspose's gradient needs explicit pads (no ",
                         "auto_pad or output_shape); export with them");
  int64_t group = n.GetInt("group", 1);
  AMP_ASSIGN_OR_RETURN(ConvGeometry geo, ConvGeometryOf(n, nd));
  const std::vector<int64_t>&s = geo.strides, &d = geo.dilations, &p = geo.pads;
  auto wd = StaticDims(ShapeOrDie(b.x(1)));
  auto xd = StaticDims(xs), yd = StaticDims(ys);
  if (!wd || !xd || !yd) return InvalidArgument(n.Describe(), ": the gradient needs static shapes");
  std::vector<int64_t> xsp(xd->begin() + 2, xd->end()), ysp(yd->begin() + 2, yd->end());
  b.dx.assign(n.num_inputs(), nullptr);
  if (b.wants(0)) {
    Node* c = b.Make("Conv", {b.dy(0), b.x(1)});
    if (group != 1) c->SetAttr("group", Attribute::Int(group));
    c->SetAttr("strides", Attribute::Ints(s));
    c->SetAttr("dilations", Attribute::Ints(d));
    c->SetAttr("pads", Attribute::Ints(p));
    b.dx[0] = c->output(0);
  }
  if (b.wants(1)) {
    AMP_ASSIGN_OR_RETURN(b.dx[1],
                         ConvWeightGradient(b, b.dy(0), ysp, b.x(0), xsp, *wd, group, s, d, p));
  }
  if (n.num_inputs() > 2 && b.wants(2)) {
    b.dx[2] = BiasGradient(b, nd);
  }
  return Status::Ok();
}

// ---- cost ----

// Each dW element sums N * Ho * Wo products.
int64_t FlopsConvWeightGrad(const Node& n) {
  const Value* dy = n.input(1);
  const auto d = dy->type().shape ? StaticDims(*dy->type().shape) : std::nullopt;
  if (!d || d->size() != 4) return 0;
  return 2 * StaticNumel(*n.output(0)) * (*d)[0] * (*d)[2] * (*d)[3];
}

// Each output element of Conv sums Cin/group * prod(kernel) products.
int64_t FlopsConv(const Node& n) {
  const Value* weight = n.input(1);
  const auto w = weight->type().shape ? StaticDims(*weight->type().shape) : std::nullopt;
  if (!w) return 0;
  int64_t per = 1;
  for (size_t i = 1; i < w->size(); ++i) per *= (*w)[i];
  return 2 * StaticNumel(*n.output(0)) * per;
}

// ConvTranspose scatters each input element into Cout/group * prod(kernel).
int64_t FlopsConvTranspose(const Node& n) {
  const Value* weight = n.input(1);
  const auto w = weight->type().shape ? StaticDims(*weight->type().shape) : std::nullopt;
  if (!w) return 0;
  int64_t per = 1;
  for (size_t i = 1; i < w->size(); ++i) per *= (*w)[i];
  return 2 * StaticNumel(*n.input(0)) * per;
}

}  // namespace

std::vector<OpDef> ConvOps() {
  return {
      {.op_type = "Conv",
       .arity = {2, 3, 1, 1},
       .infer = InferConv,
       .precision = {OpClass::kHalf, "convolution on tensor cores, FP32 accumulation"},
       .grad = GradConv,
       .matrix_flops = FlopsConv},
      {.domain = "ai.amp",
       .op_type = "ConvWeightGrad",
       .arity = {2, 2, 1, 1},
       .infer = InferConvWeightGrad,
       .precision = {OpClass::kNone, "made by fuse-conv-weight-grad after precision was decided"},
       .no_grad = "made by fusion after autodiff: never differentiated",
       .matrix_flops = FlopsConvWeightGrad},
      {.op_type = "ConvTranspose",
       .arity = {2, 3, 1, 1},
       .infer = InferConvTranspose,
       .precision = {OpClass::kHalf, "convolution on tensor cores, FP32 accumulation"},
       .grad = GradConvTranspose,
       .matrix_flops = FlopsConvTranspose},
  };
}

}  // namespace amp
