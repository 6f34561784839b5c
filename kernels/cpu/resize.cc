// Resize: nearest, n-linear and cubic interpolation, separable per axis,
// with every coordinate transformation mode of the spec (opset 13-19).
// Antialiasing, axes and keep_aspect_ratio_policy other than "stretch" are
// reported as unsupported.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/families.h"

namespace amp::cpu {
namespace {

struct Tap {
  int64_t index;
  double weight;
};

double CubicWeight(double t, double a) {
  t = std::abs(t);
  if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
  return 0;
}

Status ResizeKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  TensorRef& y = ctx.out(0);
  const KernelAttrs& n = ctx.node;
  if (n.GetInt("antialias", 0) != 0)
    return Unimplemented(n.Describe(), ": antialias is not supported");
  if (n.HasAttr("axes"))
    return Unimplemented(n.Describe(), ": the axes attribute is not supported");
  if (n.GetString("keep_aspect_ratio_policy", "stretch") != "stretch")
    return Unimplemented(n.Describe(), ": keep_aspect_ratio_policy is not supported");
  std::string mode = n.GetString("mode", "nearest");
  std::string ctm = n.GetString("coordinate_transformation_mode", "half_pixel");
  std::string nearest = n.GetString("nearest_mode", "round_prefer_floor");
  double a = n.GetFloat("cubic_coeff_a", -0.75f);
  bool exclude = n.GetInt("exclude_outside", 0) != 0;
  float extrapolation = n.GetFloat("extrapolation_value", 0.f);
  int64_t r = x.rank();
  std::vector<double> scales(r, 1.0);
  bool from_scales = ctx.has_input(2) && ctx.in(2).numel() == r;
  for (int64_t d = 0; d < r; ++d)
    scales[d] = from_scales ? ReadDouble(ctx.in(2), d)
                            : static_cast<double>(y.dims[d]) / static_cast<double>(x.dims[d]);
  std::vector<double> roi(2 * r, 0.0);
  if (ctx.has_input(1) && ctx.in(1).numel() == 2 * r)
    for (int64_t i = 0; i < 2 * r; ++i) roi[i] = ReadDouble(ctx.in(1), i);
  // Per axis and output index: the taps, or none when outside (extrapolate).
  std::vector<std::vector<std::vector<Tap>>> taps(r);
  for (int64_t d = 0; d < r; ++d) {
    int64_t in = x.dims[d], out = y.dims[d];
    double s = scales[d];
    taps[d].resize(out);
    // An axis that is not resized is copied: one tap. On the others every
    // tap of the window counts, weight 0 included, so a NaN or inf anywhere
    // in the window gives NaN, as in onnxruntime (on finite data, adding 0
    // changes nothing).
    if (mode != "nearest" && in == out && s == 1.0 && ctm != "tf_crop_and_resize") {
      for (int64_t o = 0; o < out; ++o) taps[d][o].push_back({o, 1.0});
      continue;
    }
    for (int64_t o = 0; o < out; ++o) {
      double xo;
      if (ctm == "half_pixel") {
        xo = (o + 0.5) / s - 0.5;
      } else if (ctm == "pytorch_half_pixel") {
        xo = out > 1 ? (o + 0.5) / s - 0.5 : 0;
      } else if (ctm == "align_corners") {
        // The resized length is scale * in (not rounded) when scales are given.
        double len = from_scales ? s * in : static_cast<double>(out);
        xo = len == 1 ? 0 : o * static_cast<double>(in - 1) / (len - 1);
      } else if (ctm == "tf_half_pixel_for_nn") {  // opset 11-12 models
        xo = (o + 0.5) / s;
      } else if (ctm == "asymmetric") {
        xo = o / s;
      } else if (ctm == "tf_crop_and_resize") {
        double start = roi[d], end = roi[r + d];
        xo = out > 1
                 ? start * (in - 1) + o * (end - start) * (in - 1) / static_cast<double>(out - 1)
                 : 0.5 * (start + end) * (in - 1);
        if (xo < 0 || xo > in - 1) continue;  // no taps: extrapolation value
      } else if (ctm == "half_pixel_symmetric") {
        double adjustment = out / (s * in);
        double center = in / 2.0;
        double offset = center * (1 - adjustment);
        xo = offset + (o + 0.5) / s - 0.5;
      } else {
        return Unimplemented(n.Describe(), ": coordinate_transformation_mode '", ctm, "'");
      }
      std::vector<Tap>& t = taps[d][o];
      if (mode == "nearest") {
        double f;
        if (nearest == "round_prefer_ceil")
          f = std::floor(xo + 0.5);
        else if (nearest == "floor")
          f = std::floor(xo);
        else if (nearest == "ceil")
          f = std::ceil(xo);
        else
          f = (xo - std::floor(xo) == 0.5) ? std::floor(xo) : std::round(xo);
        t.push_back({std::clamp<int64_t>(static_cast<int64_t>(f), 0, in - 1), 1.0});
      } else if (mode == "linear") {
        double c = std::clamp(xo, 0.0, static_cast<double>(in - 1));
        int64_t lo = static_cast<int64_t>(std::floor(c));
        int64_t hi = std::min(lo + 1, in - 1);
        double w = c - lo;
        t.push_back({lo, 1 - w});
        if (hi != lo) t.push_back({hi, w});
      } else if (mode == "cubic") {
        int64_t base = static_cast<int64_t>(std::floor(xo));
        double frac = xo - base;
        double total = 0;
        for (int64_t k = -1; k <= 2; ++k) {
          int64_t idx = base + k;
          double w = CubicWeight(k - frac, a);
          // Taps outside stay, at weight 0, on the edge pixel.
          if (exclude && (idx < 0 || idx >= in)) w = 0;
          t.push_back({std::clamp<int64_t>(idx, 0, in - 1), w});
          total += w;
        }
        if (exclude && total != 0)
          for (Tap& tap : t) tap.weight /= total;
      } else {
        return Unimplemented(n.Describe(), ": mode '", mode, "'");
      }
    }
  }
  std::vector<float> fx = ToFloat(x), fy(y.numel());
  std::vector<int64_t> xs = Strides(x.dims), ys = Strides(y.dims);
  std::vector<int64_t> idx(r);
  for (int64_t i = 0; i < y.numel(); ++i) {
    int64_t rest = i;
    bool outside = false;
    for (int64_t d = 0; d < r; ++d) {
      idx[d] = rest / ys[d];
      rest %= ys[d];
      if (taps[d][idx[d]].empty()) outside = true;
    }
    if (outside) {
      fy[i] = extrapolation;
      continue;
    }
    // Sum over the product of every axis' taps.
    double acc = 0;
    std::vector<size_t> k(r, 0);
    while (true) {
      double w = 1;
      int64_t off = 0;
      for (int64_t d = 0; d < r; ++d) {
        const Tap& t = taps[d][idx[d]][k[d]];
        w *= t.weight;
        off += t.index * xs[d];
      }
      acc += w * fx[off];
      int64_t d = r - 1;
      for (; d >= 0; --d) {
        if (++k[d] < taps[d][idx[d]].size()) break;
        k[d] = 0;
      }
      if (d < 0) break;
    }
    fy[i] = static_cast<float>(acc);
  }
  FromFloat(fy, y);
  return Status::Ok();
}

}  // namespace

void RegisterResizeKernels(KernelTable& t) { t["Resize"] = ResizeKernel; }

}  // namespace amp::cpu
