// Convolution kernels, any number of spatial dims: Conv as im2col + GEMM,
// ConvTranspose (the data gradient of Conv) as GEMM + col2im, and the 2-D
// weight gradient (ai.amp ConvWeightGrad) as Conv computes it. FP32
// arithmetic through OpenBLAS, one rounding at the end.
#include <algorithm>

#include "kernels/cpu/families.h"

namespace amp::cpu {
namespace {

void AddBias(const TensorRef& bias, std::vector<float>& y, int64_t n, int64_t c, int64_t spatial) {
  std::vector<float> fb = ToFloat(bias);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch) {
      float* p = y.data() + (b * c + ch) * spatial;
      for (int64_t i = 0; i < spatial; ++i) p[i] += fb[ch];
    }
}

Status ConvKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  const TensorRef& w = ctx.in(1);
  TensorRef& y = ctx.out(0);
  if (!IsFloat(x.dtype) || x.dtype == DType::kFloat64)
    return ctx.Error("Conv runs on float32, float16 and bfloat16");
  size_t r = x.dims.size() - 2;
  int64_t batch = x.dims[0], cin = x.dims[1], cout = w.dims[0];
  int64_t group = ctx.node.GetInt("group", 1);
  std::vector<int64_t> in(x.dims.begin() + 2, x.dims.end()), out(y.dims.begin() + 2, y.dims.end());
  std::vector<int64_t> kernel(w.dims.begin() + 2, w.dims.end());
  std::vector<int64_t> strides = AttrOr(ctx.node, "strides", r, 1);
  std::vector<int64_t> dilations = AttrOr(ctx.node, "dilations", r, 1);
  std::vector<int64_t> pb = PadBegin(ctx.node, in, out, kernel, strides, dilations);
  int64_t nin = Product(in), nout = Product(out), nk = Product(kernel);
  int64_t cg = cin / group, mg = cout / group;
  std::vector<int64_t> table = IndexTable(out, in, kernel, strides, pb, dilations);
  FloatView fx(x), fw(w);  // no copy for float32
  std::vector<float> fy(batch * cout * nout);
  std::vector<float> col(cg * nk * nout);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t g = 0; g < group; ++g) {
      for (int64_t c = 0; c < cg; ++c) {
        const float* src = fx.data() + (b * cin + g * cg + c) * nin;
        float* dst = col.data() + c * nk * nout;
        for (int64_t i = 0; i < nk * nout; ++i) dst[i] = table[i] < 0 ? 0.f : src[table[i]];
      }
      Sgemm(false, false, mg, nout, cg * nk, 1.0f, fw.data() + g * mg * cg * nk, cg * nk,
            col.data(), nout, 0.0f, fy.data() + (b * cout + g * mg) * nout, nout);
    }
  }
  if (ctx.has_input(2)) AddBias(ctx.in(2), fy, batch, cout, nout);
  FromFloat(fy, y);
  return Status::Ok();
}

Status ConvTransposeKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  const TensorRef& w = ctx.in(1);
  TensorRef& y = ctx.out(0);
  if (!IsFloat(x.dtype) || x.dtype == DType::kFloat64)
    return ctx.Error("ConvTranspose runs on float32, float16 and bfloat16");
  size_t r = x.dims.size() - 2;
  int64_t batch = x.dims[0], cin = x.dims[1], cout = y.dims[1];
  int64_t group = ctx.node.GetInt("group", 1);
  std::vector<int64_t> in(x.dims.begin() + 2, x.dims.end()), out(y.dims.begin() + 2, y.dims.end());
  std::vector<int64_t> kernel(w.dims.begin() + 2, w.dims.end());
  std::vector<int64_t> strides = AttrOr(ctx.node, "strides", r, 1);
  std::vector<int64_t> dilations = AttrOr(ctx.node, "dilations", r, 1);
  std::vector<int64_t> out_pad = AttrOr(ctx.node, "output_padding", r, 0);
  std::vector<int64_t> pb(r, 0);
  std::vector<int64_t> pads = ctx.node.GetInts("pads");
  std::string auto_pad = ctx.node.GetString("auto_pad", "NOTSET");
  if (pads.size() == 2 * r && auto_pad == "NOTSET" && !ctx.node.HasAttr("output_shape")) {
    pb.assign(pads.begin(), pads.begin() + r);
  } else if (auto_pad != "VALID") {
    for (size_t d = 0; d < r; ++d) {
      int64_t total =
          strides[d] * (in[d] - 1) + out_pad[d] + (kernel[d] - 1) * dilations[d] + 1 - out[d];
      // The spec's rule, with Python's floor division (total may be negative
      // when output_shape asks for extra rows at the end).
      int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      pb[d] = auto_pad == "SAME_UPPER" ? half : total - half;
    }
  }
  int64_t nin = Product(in), nout = Product(out), nk = Product(kernel);
  int64_t cg = cin / group, mg = cout / group;
  // table[kp, input position] -> output position.
  std::vector<int64_t> table = IndexTable(in, out, kernel, strides, pb, dilations);
  FloatView fx(x), fw(w);  // no copy for float32
  std::vector<float> fy(batch * cout * nout, 0.f);
  std::vector<float> col(mg * nk * nin);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t g = 0; g < group; ++g) {
      // col[mg*nk, nin] = W_g^T [mg*nk, cg] x X_g [cg, nin]
      Sgemm(true, false, mg * nk, nin, cg, 1.0f, fw.data() + g * cg * mg * nk, mg * nk,
            fx.data() + (b * cin + g * cg) * nin, nin, 0.0f, col.data(), nin);
      for (int64_t m = 0; m < mg; ++m) {
        float* dst = fy.data() + (b * cout + g * mg + m) * nout;
        const float* src = col.data() + m * nk * nin;
        for (int64_t i = 0; i < nk * nin; ++i)
          if (table[i] >= 0) dst[table[i]] += src[i];
      }
    }
  }
  if (ctx.has_input(2)) AddBias(ctx.in(2), fy, batch, cout, nout);
  FromFloat(fy, y);
  return Status::Ok();
}

// ai.amp ConvWeightGrad (ops/conv.cc), as the Conv of x^T (C, N, H, W) with
// dy^T (O, N, Ho, Wo) as its kernel (strides and dilations swapped) that
// autodiff writes: the same im2col and the same GEMM per channel, so the
// same values, without the transposed copy of x or the result's transpose.
Status ConvWeightGradKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  const TensorRef& dy = ctx.in(1);
  TensorRef& dw = ctx.out(0);
  if (!IsFloat(x.dtype) || x.dtype == DType::kFloat64 || x.rank() != 4)
    return ctx.Error("ConvWeightGrad runs on 4-D float32, float16 and bfloat16");
  int64_t n = x.dims[0], c = x.dims[1], o = dy.dims[1];
  int64_t kh = dw.dims[2], kw = dw.dims[3];
  std::vector<int64_t> s = AttrOr(ctx.node, "strides", 2, 1);
  std::vector<int64_t> d = AttrOr(ctx.node, "dilations", 2, 1);
  std::vector<int64_t> p = ctx.node.GetInts("pads", {0, 0, 0, 0});
  std::vector<int64_t> in = {x.dims[2], x.dims[3]}, dyk = {dy.dims[2], dy.dims[3]};
  // The product's grid: the kernel positions that reach the input at all
  // (the last ones may not, with a stride; they are cut off).
  std::vector<int64_t> full = {(in[0] + p[0] + p[2] - s[0] * (dyk[0] - 1) - 1) / d[0] + 1,
                               (in[1] + p[1] + p[3] - s[1] * (dyk[1] - 1) - 1) / d[1] + 1};
  if (full[0] < kh || full[1] < kw) return ctx.Error("kernel_shape does not fit x and dy");
  int64_t nin = Product(in), nk = Product(dyk), nout = Product(full);
  std::vector<int64_t> table = IndexTable(full, in, dyk, d, {p[0], p[1]}, s);
  FloatView fx(x), fdy(dy);
  // dy^T: [O, N * Ho * Wo], the GEMM's left operand.
  std::vector<float> dyt(static_cast<size_t>(o * n * nk));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oc = 0; oc < o; ++oc)
      std::copy(fdy.data() + (b * o + oc) * nk, fdy.data() + (b * o + oc + 1) * nk,
                dyt.data() + (oc * n + b) * nk);
  std::vector<float> col(static_cast<size_t>(n * nk * nout)), fy(static_cast<size_t>(o * nout));
  std::vector<float> out(static_cast<size_t>(o * c * kh * kw));
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t b = 0; b < n; ++b) {
      const float* src = fx.data() + (b * c + ch) * nin;
      float* dst = col.data() + b * nk * nout;
      for (int64_t i = 0; i < nk * nout; ++i) dst[i] = table[i] < 0 ? 0.f : src[table[i]];
    }
    Sgemm(false, false, o, nout, n * nk, 1.0f, dyt.data(), n * nk, col.data(), nout, 0.0f,
          fy.data(), nout);
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j)
          out[((oc * c + ch) * kh + i) * kw + j] = fy[oc * nout + i * full[1] + j];
  }
  // Rounded to x's type (the Conv's result), then stored in the output's
  // (out_type: the exact widening of a Cast after it).
  if (dw.dtype != x.dtype) {
    for (float& v : out)
      v = x.dtype == DType::kFloat16    ? HalfToFloat(FloatToHalf(v))
          : x.dtype == DType::kBFloat16 ? BFloat16ToFloat(FloatToBFloat16(v))
                                        : v;
  }
  FromFloat(out, dw);
  return Status::Ok();
}

}  // namespace

void RegisterConvKernels(KernelTable& t) {
  t["ai.amp:ConvWeightGrad"] = ConvWeightGradKernel;
  t["Conv"] = ConvKernel;
  t["ConvTranspose"] = ConvTransposeKernel;
}

}  // namespace amp::cpu
