// The CUDA backend: device memory, one stream, a cuBLASLt handle with its
// workspace, and the mapping from nodes to the launchers of kernels/cuda
// (read attributes, compute strides, launch). Every CUDA and cuBLASLt call is
// checked; an error names the node.
//
// This is the correct-first backend: one generic kernel per family, no
// fusion yet, and small host reads of constant scalars (Clip bounds, Slice
// starts) that the graph-capture work will fold away.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "kernels/cuda/ops.h"
#include "ops/attention.h"
#include "ops/fused_elementwise.h"
#include "runtime/backend.h"
#include "runtime/cudnn_attention.h"

namespace amp {
namespace {

using cuda::DevPtr;
using cuda::EwOp;
using cuda::Strided;

Status CudaCheck(cudaError_t err, const char* what) {
  if (err != cudaSuccess) return Internal(what, ": CUDA error: ", cudaGetErrorString(err));
  return Status::Ok();
}

struct Ctx {
  const KernelAttrs& node;  // the op and its attributes, decoded once
  const std::vector<const TensorRef*>& in;
  const std::vector<TensorRef*>& out;
  cudaStream_t stream;
  cublasLtHandle_t lt;
  void* workspace;
  size_t workspace_bytes;
  uint64_t step;
  Communicator* comm = nullptr;     // the job's ranks (NCCL); null: one rank
  CudnnAttention* cudnn = nullptr;  // cuDNN's fused attention; null: none here

  bool has_in(size_t i) const { return i < in.size() && in[i]; }
  bool has_out(size_t i) const { return i < out.size() && out[i]; }
  const TensorRef& I(size_t i) const { return *in[i]; }
  TensorRef& O(size_t i) const { return *out[i]; }
  template <typename... Args>
  Status Error(const Args&... args) const {
    return InvalidArgument(node.Describe(), ": ", args...);
  }
};

int Dt(const TensorRef& t) { return static_cast<int>(t.dtype); }
DevPtr P(const TensorRef& t) { return DevPtr{t.data, Dt(t)}; }

// Output dims with each input's broadcast strides.
StatusOr<Strided> Broadcast(const std::vector<int64_t>& out,
                            const std::vector<const std::vector<int64_t>*>& ins) {
  Strided s;
  if (out.size() > static_cast<size_t>(cuda::kMaxRank))
    return Unimplemented("rank ", out.size(), " is over the CUDA kernels' ", cuda::kMaxRank);
  s.rank = static_cast<int>(out.size());
  for (size_t d = 0; d < out.size(); ++d) s.dims[d] = out[d];
  for (size_t k = 0; k < ins.size(); ++k) {
    std::vector<int64_t> st = BroadcastStrides(*ins[k], out);
    for (size_t d = 0; d < out.size(); ++d) s.strides[k][d] = st[d];
  }
  return s;
}

// A small device tensor on the host (constants such as Slice starts or a
// Dropout ratio; a synchronizing copy).
StatusOr<Tensor> HostTensor(const Ctx& c, const TensorRef& t) {
  Tensor h(t.dtype, t.dims);
  AMP_RETURN_IF_ERROR(CudaCheck(
      cudaMemcpyAsync(h.mutable_data(), t.data, t.nbytes(), cudaMemcpyDeviceToHost, c.stream),
      "reading a small tensor"));
  AMP_RETURN_IF_ERROR(CudaCheck(cudaStreamSynchronize(c.stream), "reading a small tensor"));
  return h;
}

StatusOr<std::vector<int64_t>> HostInts(const Ctx& c, const TensorRef& t) {
  AMP_ASSIGN_OR_RETURN(Tensor h, HostTensor(c, t));
  std::vector<int64_t> out(h.num_elements());
  for (int64_t i = 0; i < h.num_elements(); ++i) out[i] = h.GetInt(i);
  return out;
}

StatusOr<double> HostScalar(const Ctx& c, const TensorRef& t) {
  AMP_ASSIGN_OR_RETURN(Tensor h, HostTensor(c, t));
  return h.GetDouble(0);
}

Status Copy(const Ctx& c, const TensorRef& from, TensorRef& to) {
  if (from.data == to.data) return Status::Ok();
  return CudaCheck(
      cudaMemcpyAsync(to.data, from.data, from.nbytes(), cudaMemcpyDeviceToDevice, c.stream),
      "copy");
}

Status Ew(const Ctx& c, EwOp op, float alpha = 0, float beta = 0) {
  std::vector<const std::vector<int64_t>*> dims;
  std::vector<DevPtr> ptrs;
  for (size_t i = 0; i < c.in.size(); ++i) {
    if (!c.in[i]) continue;
    dims.push_back(&c.in[i]->dims);
    ptrs.push_back(P(*c.in[i]));
  }
  if (op == EwOp::kClip) ptrs.resize(1), dims.resize(1);
  AMP_ASSIGN_OR_RETURN(Strided s, Broadcast(c.O(0).dims, dims));
  return cuda::Elementwise(op, ptrs.data(), static_cast<int>(ptrs.size()), c.O(0).data, Dt(c.O(0)),
                           s, alpha, beta, c.stream);
}

using Fn = Status (*)(const Ctx&);

Status Variadic(const Ctx& c, int kind) {
  const TensorRef& y = c.O(0);
  size_t n = c.in.size();
  if (kind == 1 && n > 4) return Unimplemented(c.node.Describe(), ": Mean of over 4 inputs");
  size_t at = 0;
  bool first = true;
  while (at < n) {
    std::vector<DevPtr> ptrs;
    std::vector<const std::vector<int64_t>*> dims;
    if (!first) {
      ptrs.push_back(P(y));
      dims.push_back(&y.dims);
    }
    while (ptrs.size() < 4 && at < n) {
      ptrs.push_back(P(c.I(at)));
      dims.push_back(&c.I(at).dims);
      ++at;
    }
    AMP_ASSIGN_OR_RETURN(Strided s, Broadcast(y.dims, dims));
    AMP_RETURN_IF_ERROR(cuda::EwVariadic(kind, ptrs.data(), static_cast<int>(ptrs.size()), y.data,
                                         Dt(y), s, static_cast<float>(n), c.stream));
    first = false;
  }
  return Status::Ok();
}

Status ClipFn(const Ctx& c) {
  float lo = -INFINITY, hi = INFINITY;
  if (c.has_in(1)) {
    AMP_ASSIGN_OR_RETURN(double v, HostScalar(c, c.I(1)));
    lo = static_cast<float>(v);
  }
  if (c.has_in(2)) {
    AMP_ASSIGN_OR_RETURN(double v, HostScalar(c, c.I(2)));
    hi = static_cast<float>(v);
  }
  return Ew(c, EwOp::kClip, lo, hi);
}

Status CopyFn(const Ctx& c) { return Copy(c, c.I(0), c.O(0)); }

Status DropoutFn(const Ctx& c) {
  double ratio = 0.5;
  bool training = false;
  if (c.has_in(1)) {
    AMP_ASSIGN_OR_RETURN(ratio, HostScalar(c, c.I(1)));
  }
  if (c.has_in(2)) {
    AMP_ASSIGN_OR_RETURN(double t, HostScalar(c, c.I(2)));
    training = t != 0;
  }
  bool* mask = c.has_out(1) ? static_cast<bool*>(c.O(1).data) : nullptr;
  if (!training || ratio == 0) {
    AMP_RETURN_IF_ERROR(Copy(c, c.I(0), c.O(0)));
    if (mask) {
      bool one = true;
      return cuda::Fill(mask, c.O(1).numel(), &one, 1, c.stream);
    }
    return Status::Ok();
  }
  return cuda::Dropout(P(c.I(0)), c.O(0).data, mask, c.I(0).numel(), static_cast<float>(ratio),
                       static_cast<uint64_t>(c.node.GetInt("seed", 0)), c.step, c.stream);
}

Status TransposeFn(const Ctx& c) {
  const TensorRef& x = c.I(0);
  int64_t r = x.rank();
  std::vector<int64_t> perm = c.node.GetInts("perm");
  if (perm.empty())
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  std::vector<int64_t> xs = Strides(x.dims);
  AMP_ASSIGN_OR_RETURN(Strided s, Broadcast(c.O(0).dims, {}));
  for (int64_t d = 0; d < r; ++d) s.strides[0][d] = xs[perm[d]];
  return cuda::StridedCopy(x.data, 0, c.O(0).data, s, static_cast<int>(DTypeSize(x.dtype)), nullptr,
                           0, c.stream);
}

Status ExpandFn(const Ctx& c) {
  AMP_ASSIGN_OR_RETURN(Strided s, Broadcast(c.O(0).dims, {&c.I(0).dims}));
  return cuda::StridedCopy(c.I(0).data, 0, c.O(0).data, s,
                           static_cast<int>(DTypeSize(c.I(0).dtype)), nullptr, 0, c.stream);
}

Status SliceFn(const Ctx& c) {
  const TensorRef& x = c.I(0);
  int64_t r = x.rank();
  AMP_ASSIGN_OR_RETURN(auto starts, HostInts(c, c.I(1)));
  std::vector<int64_t> axes, steps(starts.size(), 1);
  if (c.has_in(3)) {
    AMP_ASSIGN_OR_RETURN(axes, HostInts(c, c.I(3)));
  } else {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (c.has_in(4)) {
    AMP_ASSIGN_OR_RETURN(steps, HostInts(c, c.I(4)));
  }
  std::vector<int64_t> xs = Strides(x.dims);
  AMP_ASSIGN_OR_RETURN(Strided s, Broadcast(c.O(0).dims, {}));
  for (int64_t d = 0; d < r; ++d) s.strides[0][d] = xs[d];
  int64_t base = 0;
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
    int64_t dim = x.dims[a];
    int64_t st = starts[i] < 0 ? starts[i] + dim : starts[i];
    st = steps[i] > 0 ? std::clamp<int64_t>(st, 0, dim) : std::clamp<int64_t>(st, 0, dim - 1);
    base += st * xs[a];
    s.strides[0][a] = xs[a] * steps[i];
  }
  return cuda::StridedCopy(x.data, base, c.O(0).data, s, static_cast<int>(DTypeSize(x.dtype)),
                           nullptr, 0, c.stream);
}

// Concat and Split: each piece is a strided copy into/out of the big tensor.
Status ConcatSplit(const Ctx& c, bool concat) {
  const TensorRef& big = concat ? c.O(0) : c.I(0);
  int64_t axis = c.node.GetInt("axis", 0);
  if (axis < 0) axis += big.rank();
  std::vector<int64_t> bs = Strides(big.dims);
  int64_t at = 0;
  size_t pieces = concat ? c.in.size() : c.out.size();
  int width = static_cast<int>(DTypeSize(big.dtype));
  for (size_t k = 0; k < pieces; ++k) {
    if (!concat && !c.has_out(k)) return c.Error("every Split output must be used");
    const TensorRef& piece = concat ? c.I(k) : c.O(k);
    AMP_ASSIGN_OR_RETURN(Strided s, Broadcast(piece.dims, {}));
    if (concat) {
      std::vector<int64_t> ps = Strides(piece.dims);
      for (int64_t d = 0; d < piece.rank(); ++d) s.strides[0][d] = ps[d];
      AMP_RETURN_IF_ERROR(
          cuda::StridedCopy(piece.data, 0, big.data, s, width, bs.data(), at * bs[axis], c.stream));
    } else {
      for (int64_t d = 0; d < piece.rank(); ++d) s.strides[0][d] = bs[d];
      AMP_RETURN_IF_ERROR(
          cuda::StridedCopy(big.data, at * bs[axis], piece.data, s, width, nullptr, 0, c.stream));
    }
    at += piece.dims[axis];
  }
  return Status::Ok();
}
Status ConcatFn(const Ctx& c) { return ConcatSplit(c, true); }
Status SplitFn(const Ctx& c) { return ConcatSplit(c, false); }

Status GatherFn(const Ctx& c) {
  const TensorRef& x = c.I(0);
  int64_t axis = c.node.GetInt("axis", 0);
  if (axis < 0) axis += x.rank();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dims[d];
  for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dims[d];
  return cuda::Gather(x.data, P(c.I(1)), c.I(1).numel(), c.O(0).data, outer, x.dims[axis], inner,
                      static_cast<int>(DTypeSize(x.dtype)), c.stream);
}

int Reduction(const Ctx& c) {
  std::string r = c.node.GetString("reduction", "none");
  return r == "add" ? 1 : r == "none" ? 0 : -1;
}

Status ScatterNDFn(const Ctx& c) {
  int red = Reduction(c);
  if (red < 0) return Unimplemented(c.node.Describe(), ": reduction is not supported on CUDA yet");
  AMP_RETURN_IF_ERROR(Copy(c, c.I(0), c.O(0)));
  const TensorRef& idx = c.I(1);
  int k = static_cast<int>(idx.dims.back());
  return cuda::ScatterND(c.O(0).data, Dt(c.O(0)), c.O(0).dims.data(),
                         static_cast<int>(c.O(0).rank()), P(idx), idx.numel() / std::max(k, 1), k,
                         c.I(2).data, red, c.stream);
}

Status ScatterElementsFn(const Ctx& c) {
  int red = Reduction(c);
  if (red < 0) return Unimplemented(c.node.Describe(), ": reduction is not supported on CUDA yet");
  AMP_RETURN_IF_ERROR(Copy(c, c.I(0), c.O(0)));
  int64_t axis = c.node.GetInt("axis", 0);
  if (axis < 0) axis += c.I(0).rank();
  return cuda::ScatterElements(c.O(0).data, Dt(c.O(0)), c.O(0).dims.data(),
                               static_cast<int>(c.O(0).rank()), static_cast<int>(axis), P(c.I(1)),
                               c.I(1).dims.data(), c.I(2).data, red, c.stream);
}

Status OneHotFn(const Ctx& c) {
  const TensorRef& y = c.O(0);
  int64_t axis = c.node.GetInt("axis", -1);
  if (axis < 0) axis += y.rank();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= y.dims[d];
  for (int64_t d = axis + 1; d < y.rank(); ++d) inner *= y.dims[d];
  return cuda::OneHot(P(c.I(0)), c.I(2).data, y.data, static_cast<int>(DTypeSize(y.dtype)), outer,
                      y.dims[axis], inner, c.stream);
}

Status UploadTensor(const Ctx& c, const Tensor& t, TensorRef& y) {
  if (t.nbytes() != y.nbytes()) return c.Error("constant size mismatch");
  if (!t.nbytes()) return Status::Ok();
  AMP_RETURN_IF_ERROR(CudaCheck(cudaStreamSynchronize(c.stream), "upload"));
  return CudaCheck(cudaMemcpy(y.data, t.data(), t.nbytes(), cudaMemcpyHostToDevice), "upload");
}

Status ConstantFn(const Ctx& c) {
  TensorRef& y = c.O(0);
  const KernelAttrs& n = c.node;
  if (const Attribute* a = n.FindAttr("value")) return UploadTensor(c, a->t, y);
  Tensor t(y.dtype, y.dims);
  if (const Attribute* f = n.FindAttr("value_float")) {
    t.SetDouble(0, f->f);
  } else if (const Attribute* i = n.FindAttr("value_int")) {
    t.SetDouble(0, static_cast<double>(i->i));
  } else if (const Attribute* fs = n.FindAttr("value_floats")) {
    for (size_t k = 0; k < fs->floats.size(); ++k) t.SetDouble(k, fs->floats[k]);
  } else if (const Attribute* is = n.FindAttr("value_ints")) {
    for (size_t k = 0; k < is->ints.size(); ++k) t.SetDouble(k, static_cast<double>(is->ints[k]));
  } else {
    return c.Error("Constant without a value the runtime understands");
  }
  return UploadTensor(c, t, y);
}

Status ConstantOfShapeFn(const Ctx& c) {
  TensorRef& y = c.O(0);
  uint8_t v[8] = {};
  if (const Attribute* a = c.node.FindAttr("value"); a && a->t.nbytes() == DTypeSize(y.dtype))
    std::memcpy(v, a->t.data(), a->t.nbytes());
  return cuda::Fill(y.data, y.numel(), v, static_cast<int>(DTypeSize(y.dtype)), c.stream);
}

Status ShapeFn(const Ctx& c) {
  const TensorRef& x = c.I(0);
  int64_t r = x.rank();
  int64_t start = c.node.GetInt("start", 0), end = c.node.GetInt("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  std::vector<int64_t> dims(x.dims.begin() + start, x.dims.begin() + end);
  return UploadTensor(
      c, Tensor::FromVector(DType::kInt64, {static_cast<int64_t>(dims.size())}, dims), c.O(0));
}

Status SizeFn(const Ctx& c) {
  return UploadTensor(c, Tensor::FromVector<int64_t>(DType::kInt64, {}, {c.I(0).numel()}), c.O(0));
}

Status ReduceFn(const Ctx& c, int kind) {
  const TensorRef& x = c.I(0);
  std::vector<int64_t> axes;
  if (c.has_in(1)) {
    AMP_ASSIGN_OR_RETURN(axes, HostInts(c, c.I(1)));
  } else {
    axes = c.node.GetInts("axes");
  }
  if (axes.empty() && c.node.GetInt("noop_with_empty_axes", 0) != 0) return Copy(c, x, c.O(0));
  bool mask[cuda::kMaxRank] = {};
  if (x.rank() > cuda::kMaxRank) return Unimplemented(c.node.Describe(), ": rank over 8");
  for (int64_t d = 0; d < x.rank(); ++d) mask[d] = axes.empty();
  for (int64_t a : axes) mask[a < 0 ? a + x.rank() : a] = true;
  return cuda::Reduce(kind, P(x), x.dims.data(), static_cast<int>(x.rank()), mask, c.O(0).data,
                      Dt(c.O(0)), c.stream);
}

Status SoftmaxFn(const Ctx& c, int kind) {
  const TensorRef& x = c.I(0);
  int64_t axis = c.node.GetInt("axis", -1);
  if (axis < 0) axis += x.rank();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dims[d];
  for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dims[d];
  return cuda::Softmax(kind, P(x), c.O(0).data, Dt(c.O(0)), outer, x.dims[axis], inner, c.stream);
}

Status LayerNormFn(const Ctx& c) {
  const TensorRef& x = c.I(0);
  int64_t axis = c.node.GetInt("axis", -1);
  if (axis < 0) axis += x.rank();
  int64_t rows = 1, n = 1;
  for (int64_t d = 0; d < x.rank(); ++d) (d < axis ? rows : n) *= x.dims[d];
  if (c.I(1).numel() != n || (c.has_in(2) && c.I(2).numel() != n))
    return Unimplemented(c.node.Describe(), ": Scale/B must cover the normalized dims on CUDA");
  DevPtr bias = c.has_in(2) ? P(c.I(2)) : DevPtr{};
  int stat_dt = c.has_out(1) ? Dt(c.O(1)) : (c.has_out(2) ? Dt(c.O(2)) : 1);
  return cuda::LayerNorm(P(x), P(c.I(1)), bias, c.O(0).data, Dt(c.O(0)),
                         c.has_out(1) ? c.O(1).data : nullptr, c.has_out(2) ? c.O(2).data : nullptr,
                         stat_dt, rows, n, c.node.GetFloat("epsilon", 1e-5f), c.stream);
}

Status LossFn(const Ctx& c, bool softmax) {
  const TensorRef& x = c.I(0);
  int64_t n = x.dims[0], classes = x.dims[1], d = 1;
  for (int64_t k = 2; k < x.rank(); ++k) d *= x.dims[k];
  std::string r = c.node.GetString("reduction", "mean");
  int reduction = r == "none" ? 0 : r == "sum" ? 1 : 2;
  DevPtr weight = c.has_in(2) ? P(c.I(2)) : DevPtr{};
  return cuda::CrossEntropy(softmax, P(x), P(c.I(1)), weight, c.O(0).data, Dt(c.O(0)),
                            softmax && c.has_out(1) ? c.O(1).data : nullptr, n, classes, d,
                            reduction, c.node.HasAttr("ignore_index"),
                            c.node.GetInt("ignore_index", 0), c.stream);
}

Status SoftmaxCrossEntropyGradFn(const Ctx& c) {
  const TensorRef& x = c.I(0);
  if (x.dtype != DType::kFloat32 || c.I(2).dtype != DType::kFloat32 || x.rank() != 2)
    return c.Error("reads 2-D float32 logits and a float32 scale");
  bool per_row = c.I(2).numel() != 1;
  if (per_row && c.I(2).numel() != x.dims[0])
    return c.Error("scale must have one value or one per row");
  return cuda::SoftmaxCrossEntropyGrad(
      static_cast<const float*>(x.data), P(c.I(1)), static_cast<const float*>(c.I(2).data), per_row,
      static_cast<float*>(c.O(0).data), c.has_out(1) ? c.O(1).data : nullptr,
      c.has_out(1) ? Dt(c.O(1)) : 0, x.dims[0], x.dims[1], c.stream);
}

Status SoftmaxCrossEntropyFn(const Ctx& c) {
  const TensorRef& x = c.I(0);
  if (x.rank() != 2 || !IsFloat(x.dtype) || c.I(2).dtype != DType::kFloat32)
    return c.Error("reads 2-D float logits and a float32 scale");
  bool per_row = c.I(2).numel() != 1;
  if (per_row && c.I(2).numel() != x.dims[0])
    return c.Error("scale must have one value or one per row");
  int reduction = c.node.GetString("reduction", "mean") == "sum" ? 1 : 2;
  return cuda::SoftmaxCrossEntropy(
      P(x), P(c.I(1)), static_cast<const float*>(c.I(2).data), per_row,
      c.node.GetFloat("scale_divisor", 1.0f), static_cast<float*>(c.O(0).data),
      static_cast<float*>(c.O(1).data), c.has_out(2) ? c.O(2).data : nullptr,
      c.has_out(2) ? Dt(c.O(2)) : 0, x.dims[0], x.dims[1], reduction,
      c.node.HasAttr("ignore_index"), c.node.GetInt("ignore_index", 0), c.stream);
}

Status GemmFn(const Ctx& c) {
  const TensorRef& a = c.I(0);
  TensorRef& y = c.O(0);
  bool ta = c.node.GetInt("transA", 0) != 0, tb = c.node.GetInt("transB", 0) != 0;
  float alpha = c.node.GetFloat("alpha", 1.f), beta = c.node.GetFloat("beta", 1.f);
  int64_t m = y.dims[0], n = y.dims[1], k = ta ? a.dims[0] : a.dims[1];
  if (c.has_in(2) && beta != 0) {
    // Y = broadcast C, then Y = alpha AB + beta Y.
    AMP_ASSIGN_OR_RETURN(Strided s, Broadcast(y.dims, {&c.I(2).dims}));
    DevPtr cp = P(c.I(2));
    AMP_RETURN_IF_ERROR(cuda::Elementwise(EwOp::kCast, &cp, 1, y.data, Dt(y), s, 0, 0, c.stream));
  } else {
    beta = 0;
  }
  return cuda::Gemm(c.lt, c.workspace, c.workspace_bytes, ta, tb, m, n, k, alpha, a.data,
                    c.I(1).data, beta, y.data, Dt(a), Dt(y), 1, 0, 0, 0, c.stream);
}

Status MatMulFn(const Ctx& c) {
  // ai.amp MatMulT reads A and/or B with their last two axes swapped.
  bool ta = c.node.GetInt("transA", 0) != 0, tb = c.node.GetInt("transB", 0) != 0;
  std::vector<int64_t> ad = c.I(0).dims, bd = c.I(1).dims;
  if (ad.size() == 1) ad.insert(ad.begin(), 1);
  if (bd.size() == 1) bd.push_back(1);
  if (ta) std::swap(ad[ad.size() - 1], ad[ad.size() - 2]);
  if (tb) std::swap(bd[bd.size() - 1], bd[bd.size() - 2]);
  int64_t m = ad[ad.size() - 2], k = ad.back(), n = bd.back();
  std::vector<int64_t> ba(ad.begin(), ad.end() - 2), bb(bd.begin(), bd.end() - 2);
  auto prod = [](const std::vector<int64_t>& v) {
    int64_t p = 1;
    for (int64_t x : v) p *= x;
    return p;
  };
  int64_t na = prod(ba), nb = prod(bb);
  const void* A = c.I(0).data;
  const void* B = c.I(1).data;
  void* Y = c.O(0).data;
  // (fold-into-gemm: alpha, and an output type other than the inputs')
  float alpha = c.node.GetFloat("alpha", 1.f);
  int dt = Dt(c.I(0)), out_dt = Dt(c.O(0));
  auto gemm = [&](int64_t mm, int64_t batch, int64_t sa, int64_t sb, int64_t sc) {
    return cuda::Gemm(c.lt, c.workspace, c.workspace_bytes, ta, tb, mm, n, k, alpha, A, B, 0.f, Y,
                      dt, out_dt, batch, sa, sb, sc, c.stream);
  };
  // The epilogue (ops/gemm.cc; the inference allows it only on one 2-D
  // product over A's rows): in cuBLASLt's kernel, else step by step.
  cuda::GemmEpilogue ep;
  if (c.has_in(2)) ep.bias = c.I(2).data;
  ep.relu = c.node.GetString("activation", "") == "relu";
  if (c.node.GetInt("relu_mask", 0) != 0) ep.relu_mask_out = c.O(1).data;
  if (c.has_in(3)) ep.relu_mask_in = c.I(3).data;
  std::string grad_of = c.node.GetString("bias_grad", "");
  if (!grad_of.empty()) ep.bias_grad = c.O(1).data;
  ep.bias_grad_of_b = grad_of == "B";
  if (ep.bias || ep.relu || ep.bias_grad || ep.relu_mask_in) {
    if (!(nb == 1 && (!ta || na == 1)))
      return Unimplemented(c.node.Describe(), ": a GEMM epilogue on a batched product");
    int64_t rows = na * m;
    Status fused = cuda::Gemm(c.lt, c.workspace, c.workspace_bytes, ta, tb, rows, n, k, alpha, A, B,
                              0.f, Y, dt, out_dt, 1, 0, 0, 0, c.stream, ep);
    if (fused.code() != StatusCode::kUnimplemented) return fused;
    float beta = 0.f;
    if (ep.bias) {
      AMP_ASSIGN_OR_RETURN(Strided s, Broadcast(c.O(0).dims, {&c.I(2).dims}));
      DevPtr bp = P(c.I(2));
      AMP_RETURN_IF_ERROR(cuda::Elementwise(EwOp::kCast, &bp, 1, Y, out_dt, s, 0, 0, c.stream));
      beta = 1.f;
    }
    AMP_RETURN_IF_ERROR(cuda::Gemm(c.lt, c.workspace, c.workspace_bytes, ta, tb, rows, n, k, alpha,
                                   A, B, beta, Y, dt, out_dt, 1, 0, 0, 0, c.stream));
    if (ep.relu) {
      AMP_ASSIGN_OR_RETURN(Strided s, Broadcast(c.O(0).dims, {&c.O(0).dims}));
      DevPtr yp{Y, out_dt};
      AMP_RETURN_IF_ERROR(cuda::Elementwise(EwOp::kRelu, &yp, 1, Y, out_dt, s, 0, 0, c.stream));
    }
    if (ep.relu_mask_out)
      AMP_RETURN_IF_ERROR(cuda::ReluMask(Y, out_dt, rows, n, ep.relu_mask_out, c.stream));
    if (ep.relu_mask_in)
      AMP_RETURN_IF_ERROR(cuda::ApplyReluMask(Y, out_dt, ep.relu_mask_in, rows, n, c.stream));
    if (ep.bias_grad) {
      // The sums over k: A [m, k] over axis 1 ([k, m] over 0), B [k, n] over
      // axis 0 ([n, k] over 1).
      int side = ep.bias_grad_of_b ? 1 : 0;
      bool t = side == 0 ? ta : tb;
      bool k_first = side == 0 ? t : !t;
      bool mask[2] = {k_first, !k_first};
      AMP_RETURN_IF_ERROR(cuda::Reduce(0, P(c.I(side)), c.I(side).dims.data(), 2, mask,
                                       ep.bias_grad, Dt(c.O(1)), c.stream));
    }
    return Status::Ok();
  }
  // Weights: one GEMM over all rows (A's rows are contiguous only untransposed).
  if (nb == 1 && !ta) return gemm(na * m, 1, 0, 0, 0);
  if (nb == 1) return gemm(m, na, m * k, 0, m * n);
  if (ba == bb) return gemm(m, na, m * k, k * n, m * n);
  if (na == 1) return gemm(m, nb, 0, k * n, m * n);
  return Unimplemented(c.node.Describe(), ": MatMul with mixed broadcast batch dims on CUDA");
}

Status FusedSgdFn(const Ctx& c) {
  float mom = c.node.GetFloat("momentum", 0.f);
  size_t n = (c.in.size() - 3) / (mom != 0 ? 3 : 2);
  std::vector<const float*> p(n), g(n), buf(n);
  std::vector<float*> op(n), obuf(n);
  std::vector<int64_t> sizes(n);
  for (size_t k = 0; k < n; ++k) {
    std::vector<size_t> slots = {3 + k, 3 + n + k};
    if (mom != 0) slots.push_back(3 + 2 * n + k);
    for (size_t j : slots)
      if (c.I(j).dtype != DType::kFloat32 || c.I(j).numel() != c.I(3 + k).numel())
        return c.Error("parameter ", k, ": every tensor must be float32 of one size");
    p[k] = static_cast<const float*>(c.I(3 + k).data);
    g[k] = static_cast<const float*>(c.I(3 + n + k).data);
    op[k] = static_cast<float*>(c.O(k).data);
    if (mom != 0) {
      buf[k] = static_cast<const float*>(c.I(3 + 2 * n + k).data);
      obuf[k] = static_cast<float*>(c.O(n + k).data);
    }
    sizes[k] = c.I(3 + k).numel();
  }
  if (c.I(0).dtype != DType::kFloat32 || c.I(1).dtype != DType::kFloat32)
    return c.Error("lr and step must be float32 scalars");
  const bool* skip = c.has_in(2) ? static_cast<const bool*>(c.I(2).data) : nullptr;
  return cuda::FusedSgd(
      static_cast<int>(n), p.data(), g.data(), mom != 0 ? buf.data() : nullptr, op.data(),
      mom != 0 ? obuf.data() : nullptr, sizes.data(), static_cast<const float*>(c.I(0).data),
      static_cast<const float*>(c.I(1).data), skip, mom, c.node.GetFloat("dampening", 0.f),
      c.node.GetInt("nesterov", 0) != 0, c.node.GetFloat("weight_decay", 0.f), c.stream);
}

Status FusedAdamFn(const Ctx& c) {
  size_t n = (c.in.size() - 3) / 4;
  std::vector<const float*> p(n), g(n), m(n), v(n);
  std::vector<float*> op(n), om(n), ov(n);
  std::vector<int64_t> sizes(n);
  for (size_t k = 0; k < n; ++k) {
    for (size_t j : {3 + k, 3 + n + k, 3 + 2 * n + k, 3 + 3 * n + k})
      if (c.I(j).dtype != DType::kFloat32 || c.I(j).numel() != c.I(3 + k).numel())
        return c.Error("parameter ", k, ": every tensor must be float32 of one size");
    p[k] = static_cast<const float*>(c.I(3 + k).data);
    g[k] = static_cast<const float*>(c.I(3 + n + k).data);
    m[k] = static_cast<const float*>(c.I(3 + 2 * n + k).data);
    v[k] = static_cast<const float*>(c.I(3 + 3 * n + k).data);
    op[k] = static_cast<float*>(c.O(k).data);
    om[k] = static_cast<float*>(c.O(n + k).data);
    ov[k] = static_cast<float*>(c.O(2 * n + k).data);
    sizes[k] = c.I(3 + k).numel();
  }
  if (c.I(0).dtype != DType::kFloat32 || c.I(1).dtype != DType::kFloat32)
    return c.Error("lr and step must be float32 scalars");
  const bool* skip = c.has_in(2) ? static_cast<const bool*>(c.I(2).data) : nullptr;
  return cuda::FusedAdam(static_cast<int>(n), p.data(), g.data(), m.data(), v.data(), op.data(),
                         om.data(), ov.data(), sizes.data(), static_cast<const float*>(c.I(0).data),
                         static_cast<const float*>(c.I(1).data), skip,
                         c.node.GetFloat("beta1", 0.9f), c.node.GetFloat("beta2", 0.999f),
                         c.node.GetFloat("eps", 1e-8f), c.node.GetFloat("weight_decay", 0.f),
                         c.node.GetInt("decoupled", 0) != 0, c.stream);
}

Status LossScaleUpdateFn(const Ctx& c) {
  if (c.I(0).dtype != DType::kFloat32 || c.I(1).dtype != DType::kInt64 ||
      c.I(2).dtype != DType::kBool)
    return c.Error("reads a float32 scale, an int64 tracker and a bool flag");
  cuda::LossScaleRule r;
  r.growth_factor = c.node.GetFloat("growth_factor", 2.0f);
  r.backoff_factor = c.node.GetFloat("backoff_factor", 0.5f);
  r.growth_interval = c.node.GetInt("growth_interval", 2000);
  r.min_scale = c.node.GetFloat("min_scale", 0.0f);
  r.max_scale = c.node.GetFloat("max_scale", 0.0f);
  bool step = c.has_in(3);
  if (step && c.I(3).dtype != DType::kFloat32) return c.Error("reads a float32 step count");
  return cuda::LossScaleUpdate(static_cast<const float*>(c.I(0).data),
                               static_cast<const int64_t*>(c.I(1).data),
                               static_cast<const bool*>(c.I(2).data),
                               step ? static_cast<const float*>(c.I(3).data) : nullptr,
                               static_cast<float*>(c.O(0).data), static_cast<int64_t*>(c.O(1).data),
                               step ? static_cast<float*>(c.O(2).data) : nullptr, r, c.stream);
}

Status UnscaleCheckFn(const Ctx& c) {
  size_t n = c.in.size() - 1;
  std::vector<const float*> g(n);
  std::vector<float*> out(n);
  std::vector<int64_t> sizes(n);
  for (size_t k = 0; k < n; ++k) {
    if (c.I(1 + k).dtype != DType::kFloat32) return c.Error("gradients must be float32");
    g[k] = static_cast<const float*>(c.I(1 + k).data);
    out[k] = static_cast<float*>(c.O(k).data);
    sizes[k] = c.I(1 + k).numel();
  }
  return cuda::UnscaleCheck(static_cast<int>(n), g.data(), out.data(), sizes.data(),
                            static_cast<const float*>(c.I(0).data),
                            c.node.GetInt("invert_scale", 0) != 0, static_cast<bool*>(c.O(n).data),
                            c.stream);
}

// ai.amp FusedElementwise: the program lowered to opcodes, with every
// input's broadcast strides and every output's pointer, in one launch.
Status FusedElementwiseFn(const Ctx& c) {
  auto decoded = DecodeFusedProgram([&](std::string_view name) { return c.node.FindAttr(name); },
                                    static_cast<int>(c.in.size()), static_cast<int>(c.out.size()));
  if (!decoded.ok()) return decoded.status();
  const FusedProgram& p = *decoded;
  if (p.num_inputs > cuda::kFusedMaxInputs || p.instrs.size() > size_t{cuda::kFusedMaxInstrs})
    return c.Error("a fused program of ", p.num_inputs, " inputs and ", p.instrs.size(),
                   " instructions is over the CUDA kernel's ", cuda::kFusedMaxInputs, " and ",
                   cuda::kFusedMaxInstrs);
  cuda::FusedProgramDev d;
  const TensorRef& first = c.O(0);
  if (first.rank() > cuda::kMaxRank)
    return Unimplemented("rank ", first.rank(), " is over the CUDA kernels' ", cuda::kMaxRank);
  d.rank = static_cast<int>(first.rank());
  for (int k = 0; k < d.rank; ++k) d.dims[k] = first.dims[k];
  d.n_in = p.num_inputs;
  for (int k = 0; k < p.num_inputs; ++k) {
    if (!c.has_in(k)) return c.Error("input ", k, " is missing");
    d.in[k] = P(c.I(k));
    std::vector<int64_t> st = BroadcastStrides(c.I(k).dims, first.dims);
    for (int j = 0; j < d.rank; ++j) d.strides[k][j] = st[j];
  }
  d.n_instr = static_cast<int>(p.instrs.size());
  for (size_t k = 0; k < p.instrs.size(); ++k) {
    const FusedInstr& f = p.instrs[k];
    cuda::FusedInstrDev& in = d.instrs[k];
    if (!cuda::FusedOpCode(f.op.c_str(), f.params[0] != 0, &in.op))
      return c.Error("the CUDA runtime cannot run '", f.op, "' in a fused program");
    in.type = static_cast<int>(f.type);
    for (int j = 0; j < 3; ++j) in.args[j] = static_cast<signed char>(f.args[j]);
    in.alpha = f.params[0];
    in.beta = f.params[1];
  }
  for (size_t o = 0; o < c.out.size(); ++o) {
    if (!c.has_out(o)) continue;
    if (c.O(o).dims != first.dims) return c.Error("outputs of different shapes");
    d.out[d.n_out] = c.O(o).data;
    d.out_dtype[d.n_out] = Dt(c.O(o));
    d.out_reg[d.n_out] = p.results[o];
    ++d.n_out;
  }
  return cuda::FusedElementwise(d, c.stream);
}

Status NormalizeGradFn(const Ctx& c) {
  const TensorRef& x = c.I(0);
  if (x.dtype != DType::kFloat32 || c.I(1).dtype != DType::kFloat32)
    return c.Error("expects float32 x and dxhat");
  if (x.rank() > cuda::kMaxRank)
    return Unimplemented("rank ", x.rank(), " is over the CUDA kernels' ", cuda::kMaxRank);
  cuda::NormGroups g;
  g.rank = static_cast<int>(x.rank());
  std::vector<int64_t> strides = Strides(x.dims);
  for (int d = 0; d < g.rank; ++d) {
    g.dims[d] = x.dims[d];
    g.strides[d] = strides[d];
  }
  for (int64_t a : c.node.GetInts("axes")) {
    int64_t k = a < 0 ? a + x.rank() : a;
    if (k < 0 || k >= x.rank()) return c.Error("axis ", a, " out of range");
    g.reduced[k] = true;
  }
  return cuda::NormalizeGrad(x.as<float>(), c.I(1).as<float>(), c.O(0).as<float>(),
                             c.has_out(1) ? c.O(1).as<float>() : nullptr, g,
                             c.node.GetFloat("epsilon", 1e-5f), c.stream);
}

// ai.amp Attention (q, k, v [, mask]) and AttentionGrad (q, k, v, dO
// [, mask]): the slices, the head dims, each operand's view (ops/attention.h)
// and the mask's broadcast strides.
StatusOr<cuda::AttentionShape> AttentionShapeOf(const Ctx& c, size_t inputs, size_t mask_input) {
  std::vector<std::vector<int64_t>> dims;
  for (size_t i = 0; i < c.in.size(); ++i)
    dims.push_back(c.has_in(i) ? c.I(i).dims : std::vector<int64_t>{});
  const AttentionAttrs attrs = AttentionAttrs::Of(c.node, c.out.size(), c.has_in(5));
  AMP_ASSIGN_OR_RETURN(AttentionLayout l, AttentionLayoutOf(attrs, dims));
  for (size_t o = 0; o < c.out.size(); ++o)
    if (c.has_out(o) && c.O(o).dims != l.out_shapes[o])
      return c.Error("output ", o, " is not of the shape the node's layout gives");
  if (l.batch.size() > static_cast<size_t>(cuda::kMaxRank))
    return Unimplemented("attention of batch rank ", l.batch.size(), " is over the CUDA kernels' ",
                         cuda::kMaxRank);
  cuda::AttentionShape s;
  s.alpha = c.node.GetFloat("alpha", 1.0f);
  s.grad_alpha = c.node.GetFloat("grad_alpha", s.alpha);
  s.slices = l.slices;
  s.sq = l.sq;
  s.sk = l.sk;
  s.d = l.d;
  s.dv = l.dv;
  s.batch_rank = static_cast<int>(l.batch.size());
  for (size_t i = 0; i < l.batch.size(); ++i) s.batch_dims[i] = l.batch[i];
  auto view = [&](const AttentionOperand& o) {
    cuda::AttentionView v;
    v.offset = o.offset;
    for (size_t i = 0; i < l.batch.size(); ++i) v.batch_strides[i] = o.batch_strides[i];
    v.row = o.row;
    v.col = o.col;
    return v;
  };
  s.q = view(l.operands[kAttnQ]);
  s.k = view(l.operands[kAttnK]);
  s.v = view(l.operands[kAttnV]);
  if (inputs == 3) {
    s.o = view(l.operands[kAttnO]);
  } else {
    s.dout = view(l.operands[kAttnDO]);
    s.dq = view(l.operands[kAttnDQ]);
    s.dk = view(l.operands[kAttnDK]);
    s.dv_ = view(l.operands[kAttnDV]);
  }
  if (c.has_in(mask_input)) {
    std::vector<int64_t> scores = l.batch;
    scores.push_back(s.sq);
    scores.push_back(s.sk);
    std::vector<int64_t> st = BroadcastStrides(c.I(mask_input).dims, scores);
    for (size_t i = 0; i < l.batch.size(); ++i) s.mask_batch_strides[i] = st[i];
    s.mask_si = st[st.size() - 2];
    s.mask_sj = st.back();
  }
  // An output's elements no view covers are zero.
  if (l.views) {
    for (int o = 0; o < static_cast<int>(c.out.size() - (attrs.stats ? 1 : 0)); ++o) {
      if (!c.has_out(o)) continue;
      AMP_ASSIGN_OR_RETURN(bool tiled, AttentionOutputTiled(attrs, l, o));
      if (!tiled)
        AMP_RETURN_IF_ERROR(CudaCheck(
            cudaMemsetAsync(c.O(o).data, 0, c.O(o).numel() * DTypeSize(c.O(o).dtype), c.stream),
            "cudaMemsetAsync"));
    }
  }
  return s;
}

DevPtr Optional(const Ctx& c, size_t i) { return c.has_in(i) ? P(c.I(i)) : DevPtr{}; }

// Runs the node as cuDNN's fused attention where it fits (ops/attention.h:
// CudnnAttentionLayoutOf) and this machine has cuDNN; false where amp's own
// kernels must run it instead (they ignore a backward's forward inputs).
StatusOr<bool> RunCudnnAttention(const Ctx& c) {
  if (!c.cudnn) return false;
  const AttentionAttrs attrs = AttentionAttrs::Of(c.node, c.out.size(), c.has_in(5));
  std::vector<std::vector<int64_t>> dims;
  AttentionTypes types;
  for (size_t i = 0; i < c.in.size(); ++i) {
    dims.push_back(c.has_in(i) ? c.I(i).dims : std::vector<int64_t>{});
    types.inputs.push_back(c.has_in(i) ? c.I(i).dtype : DType::kUndefined);
  }
  for (size_t o = 0; o < c.out.size(); ++o)
    types.outputs.push_back(c.has_out(o) ? c.O(o).dtype : DType::kUndefined);
  size_t mask = attrs.grad ? 4 : 3;
  if (c.has_in(mask)) types.mask_dims = &c.I(mask).dims;
  AMP_ASSIGN_OR_RETURN(AttentionLayout l, AttentionLayoutOf(attrs, dims));
  auto layout = CudnnAttentionLayoutOf(attrs, l, types);
  if (!layout.ok()) return false;
  CudnnAttentionCall call;
  call.layout = &*layout;
  call.grad = attrs.grad;
  call.type = types.inputs[0];
  call.alpha = attrs.alpha;
  for (size_t i = 0; i < c.in.size() && i < 7; ++i)
    call.inputs[i] = c.has_in(i) ? c.I(i).data : nullptr;
  for (size_t o = 0; o < c.out.size() && o < 3; ++o)
    call.outputs[o] = c.has_out(o) ? c.O(o).data : nullptr;
  Status st = c.cudnn->Run(call);
  if (st.code() == StatusCode::kUnimplemented) return false;
  AMP_RETURN_IF_ERROR(st);
  return true;
}

Status AttentionFn(const Ctx& c) {
  AMP_ASSIGN_OR_RETURN(cuda::AttentionShape s, AttentionShapeOf(c, 3, 3));
  AMP_ASSIGN_OR_RETURN(bool done, RunCudnnAttention(c));
  if (done) return Status::Ok();
  float* stats = c.has_out(1) ? c.O(1).as<float>() : nullptr;
  return cuda::Attention(s, P(c.I(0)), P(c.I(1)), P(c.I(2)), Optional(c, 3), c.O(0).data,
                         Dt(c.O(0)), stats, c.stream);
}

Status AttentionGradFn(const Ctx& c) {
  AMP_ASSIGN_OR_RETURN(cuda::AttentionShape s, AttentionShapeOf(c, 4, 4));
  for (size_t o = 0; o < c.out.size(); ++o)
    if (!c.has_out(o))
      return c.Error("the CUDA kernels write dq, dk and dv: every output must be used");
  // One packed output holds all three gradients.
  TensorRef& dq = c.O(0);
  TensorRef& dk = c.out.size() == 3 ? c.O(1) : c.O(0);
  TensorRef& dv = c.out.size() == 3 ? c.O(2) : c.O(0);
  AMP_ASSIGN_OR_RETURN(bool done, RunCudnnAttention(c));
  if (done) return Status::Ok();
  size_t stats = static_cast<size_t>(s.slices * s.sq) * 3 * sizeof(float);
  if (stats > c.workspace_bytes)
    return Unimplemented(c.node.Describe(), ": ", s.slices * s.sq,
                         " query rows need more than the CUDA backend's workspace for their "
                         "softmax statistics");
  return cuda::AttentionGrad(s, P(c.I(0)), P(c.I(1)), P(c.I(2)), P(c.I(3)), Optional(c, 4), dq.data,
                             Dt(dq), dk.data, Dt(dk), dv.data, Dt(dv),
                             static_cast<float*>(c.workspace), c.stream);
}

Status BatchNormGradFn(const Ctx& c) {
  const TensorRef &x = c.I(0), &dy = c.I(1), &scale = c.I(2);
  if (x.rank() < 2 || x.dims != dy.dims || scale.dtype != DType::kFloat32 ||
      scale.numel() != x.dims[1])
    return c.Error("expects x and dy of one [N, C, ...] shape and C float32 scales");
  int64_t spatial = 1;
  for (int64_t d = 2; d < x.rank(); ++d) spatial *= x.dims[d];
  return cuda::BatchNormGrad(P(x), P(dy), scale.as<float>(), c.O(0).data, Dt(c.O(0)),
                             c.has_out(1) ? c.O(1).as<float>() : nullptr,
                             c.has_out(2) ? c.O(2).as<float>() : nullptr, x.dims[0], x.dims[1],
                             spatial, c.node.GetFloat("epsilon", 1e-5f), c.stream);
}

Status LayerNormGradFn(const Ctx& c) {
  const TensorRef &x = c.I(0), &dy = c.I(1), &scale = c.I(2);
  bool f32 = x.dtype == DType::kFloat32 && dy.dtype == DType::kFloat32 &&
             scale.dtype == DType::kFloat32 && (!c.has_in(3) || c.I(3).dtype == DType::kFloat32);
  if (!f32 || x.dims != dy.dims) return c.Error("expects float32 x, dy, scale (and addend)");
  int64_t axis = c.node.GetInt("axis", -1);
  if (axis < 0) axis += x.rank();
  if (axis <= 0 || axis >= x.rank()) return c.Error("axis out of range");
  int64_t n = 1;
  for (int64_t d = axis; d < x.rank(); ++d) n *= x.dims[d];
  if (scale.numel() != n) return c.Error("scale does not cover the normalized axes");
  int64_t rows = n ? x.numel() / n : 0;
  if (static_cast<size_t>(rows) * 2 * sizeof(float) > c.workspace_bytes)
    return Unimplemented(c.node.Describe(), ": ", rows,
                         " rows need more than the CUDA backend's workspace for their statistics");
  for (size_t k = 1; k < 4; ++k)
    if (c.has_out(k) && (c.O(k).dtype != DType::kFloat32 || c.O(k).numel() != n))
      return c.Error("output ", k, " must be float32 of the scale's size");
  if (c.has_out(4) && (!IsFloat(c.O(4).dtype) || c.O(4).dims != x.dims))
    return c.Error("output 4 (dx's copy) must be a float tensor of x's shape");
  cuda::LayerNormGradArgs a;
  a.x = x.as<float>();
  a.dy = dy.as<float>();
  a.scale = scale.as<float>();
  a.addend = c.has_in(3) ? c.I(3).as<float>() : nullptr;
  a.dx = c.O(0).as<float>();
  a.dscale = c.has_out(1) ? c.O(1).as<float>() : nullptr;
  a.dbias = c.has_out(2) ? c.O(2).as<float>() : nullptr;
  a.dx_sum = c.has_out(3) ? c.O(3).as<float>() : nullptr;
  if (c.has_out(4)) {
    a.copy = c.O(4).data;
    a.copy_dtype = Dt(c.O(4));
  }
  a.stats = static_cast<float*>(c.workspace);
  a.rows = rows;
  a.n = n;
  a.eps = c.node.GetFloat("epsilon", 1e-5f);
  return cuda::LayerNormGrad(a, c.stream);
}

// ai.amp AllReduce: the mean over the ranks of a bucket of FP32 gradients,
// one NCCL group queued on the step's stream (no host work, so the backward
// pass queued after it overlaps it). One rank, without a communicator: a copy.
Status AllReduceFn(const Ctx& c) {
  if (c.in.size() != c.out.size())
    return c.Error("has ", c.in.size(), " inputs and ", c.out.size(), " outputs");
  std::vector<Communicator::DeviceBuffer> buffers;
  for (size_t k = 0; k < c.in.size(); ++k) {
    if (!c.has_in(k) || !c.has_out(k)) return c.Error("input or output ", k, " is missing");
    if (c.I(k).dtype != DType::kFloat32 || c.O(k).dtype != DType::kFloat32 ||
        c.I(k).numel() != c.O(k).numel())
      return c.Error("input ", k, " is not float32 of its output's size");
    buffers.push_back({c.I(k).data, c.O(k).data, static_cast<size_t>(c.I(k).numel())});
  }
  if (c.comm == nullptr) {
    for (const auto& b : buffers)
      if (b.out != b.in)
        AMP_RETURN_IF_ERROR(CudaCheck(cudaMemcpyAsync(b.out, b.in, b.count * sizeof(float),
                                                      cudaMemcpyDeviceToDevice, c.stream),
                                      "AllReduce copy"));
    return Status::Ok();
  }
  return c.comm->DeviceAllReduceMean(buffers.data(), buffers.size(), c.stream);
}

Status MultiCastFn(const Ctx& c) {
  std::vector<DevPtr> in;
  std::vector<void*> out;
  std::vector<int64_t> sizes;
  for (size_t k = 0; k < c.in.size(); ++k) {
    if (!c.has_in(k) || !c.has_out(k)) continue;
    in.push_back(P(c.I(k)));
    out.push_back(c.O(k).data);
    sizes.push_back(c.I(k).numel());
  }
  if (in.empty()) return Status::Ok();
  return cuda::MultiCast(static_cast<int>(in.size()), in.data(), out.data(), sizes.data(),
                         Dt(c.O(0)), c.stream);
}

const std::map<std::string, Fn>& Table() {
  static const std::map<std::string, Fn> t = [] {
    std::map<std::string, Fn> m;
#define AMP_EW(Name, Op) m[Name] = [](const Ctx& c) { return Ew(c, EwOp::Op); }
    AMP_EW("Add", kAdd);
    AMP_EW("Sub", kSub);
    AMP_EW("Mul", kMul);
    AMP_EW("Div", kDiv);
    AMP_EW("Pow", kPow);
    AMP_EW("PRelu", kPRelu);
    AMP_EW("And", kAnd);
    AMP_EW("Or", kOr);
    AMP_EW("Xor", kXor);
    AMP_EW("Equal", kEqual);
    AMP_EW("Greater", kGreater);
    AMP_EW("GreaterOrEqual", kGreaterEq);
    AMP_EW("Less", kLess);
    AMP_EW("LessOrEqual", kLessEq);
    AMP_EW("Where", kWhere);
    AMP_EW("Abs", kAbs);
    AMP_EW("Relu", kRelu);
    AMP_EW("Sqrt", kSqrt);
    AMP_EW("Exp", kExp);
    AMP_EW("Log", kLog);
    AMP_EW("Erf", kErf);
    AMP_EW("Reciprocal", kReciprocal);
    AMP_EW("Tanh", kTanh);
    AMP_EW("Sigmoid", kSigmoid);
    AMP_EW("Sign", kSign);
    AMP_EW("Ceil", kCeil);
    AMP_EW("Floor", kFloor);
    AMP_EW("Round", kRound);
    AMP_EW("Sin", kSin);
    AMP_EW("Cos", kCos);
    AMP_EW("Softplus", kSoftplus);
    AMP_EW("Softsign", kSoftsign);
    AMP_EW("HardSwish", kHardSwish);
    AMP_EW("Not", kNot);
    AMP_EW("IsNaN", kIsNaN);
    AMP_EW("Cast", kCast);
    AMP_EW("Identity", kIdentity);
    AMP_EW("Neg", kNeg);
#undef AMP_EW
    m["CastLike"] = [](const Ctx& c) {
      std::vector<const TensorRef*> one = {c.in[0]};
      Ctx d{c.node, one, c.out, c.stream, c.lt, c.workspace, c.workspace_bytes, c.step};
      return Ew(d, EwOp::kCast);
    };
    m["Mod"] = [](const Ctx& c) {
      return Ew(c, c.node.GetInt("fmod", 0) ? EwOp::kFMod : EwOp::kMod);
    };
    m["IsInf"] = [](const Ctx& c) {
      return Ew(c, EwOp::kIsInf, static_cast<float>(c.node.GetInt("detect_positive", 1)),
                static_cast<float>(c.node.GetInt("detect_negative", 1)));
    };
    m["LeakyRelu"] = [](const Ctx& c) {
      return Ew(c, EwOp::kLeakyRelu, c.node.GetFloat("alpha", 0.01f));
    };
    m["Elu"] = [](const Ctx& c) { return Ew(c, EwOp::kElu, c.node.GetFloat("alpha", 1.f)); };
    m["HardSigmoid"] = [](const Ctx& c) {
      return Ew(c, EwOp::kHardSigmoid, c.node.GetFloat("alpha", 0.2f),
                c.node.GetFloat("beta", 0.5f));
    };
    m["Gelu"] = [](const Ctx& c) {
      return Ew(c,
                c.node.GetString("approximate", "none") == "tanh" ? EwOp::kGeluTanh : EwOp::kGelu);
    };
    m["Clip"] = ClipFn;
    m["Sum"] = [](const Ctx& c) { return Variadic(c, 0); };
    m["Mean"] = [](const Ctx& c) { return Variadic(c, 1); };
    m["Max"] = [](const Ctx& c) { return Variadic(c, 2); };
    m["Min"] = [](const Ctx& c) { return Variadic(c, 3); };
    for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}) m[op] = CopyFn;
    m["Dropout"] = DropoutFn;
    m["Transpose"] = TransposeFn;
    m["Expand"] = ExpandFn;
    m["Slice"] = SliceFn;
    m["Concat"] = ConcatFn;
    m["Split"] = SplitFn;
    m["Gather"] = GatherFn;
    m["ScatterND"] = ScatterNDFn;
    m["ScatterElements"] = ScatterElementsFn;
    m["OneHot"] = OneHotFn;
    m["Constant"] = ConstantFn;
    m["ConstantOfShape"] = ConstantOfShapeFn;
    m["Shape"] = ShapeFn;
    m["Size"] = SizeFn;
    m["ReduceSum"] = [](const Ctx& c) { return ReduceFn(c, 0); };
    m["ReduceMean"] = [](const Ctx& c) { return ReduceFn(c, 1); };
    m["ReduceMax"] = [](const Ctx& c) { return ReduceFn(c, 2); };
    m["ReduceMin"] = [](const Ctx& c) { return ReduceFn(c, 3); };
    m["ReduceSumSquare"] = [](const Ctx& c) { return ReduceFn(c, 4); };
    m["ReduceL1"] = [](const Ctx& c) { return ReduceFn(c, 5); };
    m["ReduceL2"] = [](const Ctx& c) { return ReduceFn(c, 6); };
    m["ReduceProd"] = [](const Ctx& c) { return ReduceFn(c, 7); };
    m["ReduceLogSum"] = [](const Ctx& c) { return ReduceFn(c, 8); };
    m["ReduceLogSumExp"] = [](const Ctx& c) { return ReduceFn(c, 9); };
    m["Softmax"] = [](const Ctx& c) { return SoftmaxFn(c, 0); };
    m["LogSoftmax"] = [](const Ctx& c) { return SoftmaxFn(c, 1); };
    m["LayerNormalization"] = LayerNormFn;
    m["ai.amp:LayerNormalization"] = LayerNormFn;
    m["SoftmaxCrossEntropyLoss"] = [](const Ctx& c) { return LossFn(c, true); };
    m["NegativeLogLikelihoodLoss"] = [](const Ctx& c) { return LossFn(c, false); };
    m["Gemm"] = GemmFn;
    m["MatMul"] = MatMulFn;
    m["ai.amp:MatMulT"] = MatMulFn;
    m["ai.amp:FusedAdam"] = FusedAdamFn;
    m["ai.amp:FusedElementwise"] = FusedElementwiseFn;
    m["ai.amp:MultiCast"] = MultiCastFn;
    m["ai.amp:AllReduce"] = AllReduceFn;
    m["ai.amp:NormalizeGrad"] = NormalizeGradFn;
    m["ai.amp:LayerNormGrad"] = LayerNormGradFn;
    m["ai.amp:BatchNormGrad"] = BatchNormGradFn;
    m["ai.amp:Attention"] = AttentionFn;
    m["ai.amp:AttentionGrad"] = AttentionGradFn;
    m["ai.amp:UnscaleCheck"] = UnscaleCheckFn;
    m["ai.amp:LossScaleUpdate"] = LossScaleUpdateFn;
    m["ai.amp:FusedSgd"] = FusedSgdFn;
    m["ai.amp:SoftmaxCrossEntropy"] = SoftmaxCrossEntropyFn;
    m["ai.amp:SoftmaxCrossEntropyGrad"] = SoftmaxCrossEntropyGradFn;
    return m;
  }();
  return t;
}

// "Op" for the default domain, "domain:Op" otherwise (the CPU table's keys).
template <typename N>  // Node or KernelAttrs
std::string Key(const N& node) {
  return node.domain().empty() || node.domain() == "ai.onnx" ? node.op_type()
                                                             : node.domain() + ":" + node.op_type();
}

bool CudaHasKernel(std::string_view domain, std::string_view op) {
  std::string key = domain.empty() || domain == "ai.onnx"
                        ? std::string(op)
                        : std::string(domain) + ":" + std::string(op);
  return Table().count(key) != 0;
}

Status CudaSupports(const Node& node) {
  if (Table().count(Key(node))) return Status::Ok();
  return Unimplemented(node.Describe(), ": the CUDA runtime has no kernel for '", node.op_type(),
                       "' yet; use --device cpu");
}

// With cuDNN's fused attention built in, AttentionGrad reads the forward's
// O and statistics (cudnn_attention.h).
constexpr bool kAttentionGradReadsForward = kHaveCudnnAttention;

class CudaKernelSupport : public KernelSupport {
 public:
  std::string_view name() const override { return "cuda"; }
  Status Supports(const Node& node) const override { return CudaSupports(node); }
  bool HasKernel(std::string_view domain, std::string_view op) const override {
    return CudaHasKernel(domain, op);
  }
  bool AttentionGradReadsForward() const override { return kAttentionGradReadsForward; }
};

class CudaBackend : public Backend {
 public:
  ~CudaBackend() override {
    cudnn_.reset();  // (before its stream)
    if (workspace_) cudaFree(workspace_);
    if (lt_) cublasLtDestroy(lt_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status Init() {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0)
      return Unimplemented("--device cuda: no usable GPU here (",
                           err != cudaSuccess ? cudaGetErrorString(err) : "no device",
                           "); use --device cpu");
    AMP_RETURN_IF_ERROR(
        CudaCheck(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a stream"));
    if (cublasLtCreate(&lt_) != CUBLAS_STATUS_SUCCESS) return Internal("cublasLtCreate failed");
    AMP_RETURN_IF_ERROR(CudaCheck(cudaMalloc(&workspace_, kWorkspace), "cuBLASLt workspace"));
    cudnn_ = CreateCudnnAttention(stream_, &no_cudnn_);
    return Status::Ok();
  }

  std::string_view name() const override { return "cuda"; }

  StatusOr<void*> Allocate(size_t bytes) override {
    void* p = nullptr;
    AMP_RETURN_IF_ERROR(CudaCheck(cudaMalloc(&p, std::max<size_t>(bytes, 1)), "cudaMalloc"));
    AMP_RETURN_IF_ERROR(CudaCheck(cudaMemset(p, 0, std::max<size_t>(bytes, 1)), "cudaMemset"));
    return p;
  }
  void Free(void* p) override { cudaFree(p); }
  Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return Status::Ok();
    AMP_RETURN_IF_ERROR(Drain("copy to device"));
    return CudaCheck(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "copy to device");
  }
  Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return Status::Ok();
    AMP_RETURN_IF_ERROR(Drain("copy to host"));
    return CudaCheck(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "copy to host");
  }
  Status CopyOnDevice(void* dst, const void* src, size_t bytes) override {
    if (!bytes || dst == src) return Status::Ok();
    return CudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_),
                     "copy on device");
  }
  Status Supports(const Node& node) const override { return CudaSupports(node); }
  bool HasKernel(std::string_view domain, std::string_view op) const override {
    return CudaHasKernel(domain, op);
  }
  bool AttentionGradReadsForward() const override { return kAttentionGradReadsForward; }
  Status Run(const KernelAttrs& node, const std::vector<const TensorRef*>& inputs,
             const std::vector<TensorRef*>& outputs, uint64_t step) override {
    auto it = Table().find(Key(node));
    if (it == Table().end())
      return Unimplemented(node.Describe(), ": the CUDA runtime has no kernel for it");
    Ctx c{node, inputs, outputs, stream_, lt_, workspace_, kWorkspace, step, comm_, cudnn_.get()};
    Status st = it->second(c);
    if (!st.ok()) return st.WithContext(node.Describe());
    return Status::Ok();
  }
  Status Synchronize() override { return Drain("synchronize"); }
  // Gradients move between GPUs over NCCL, in device memory: a host-memory
  // communicator (MPI's, TCP's) cannot serve this backend.
  Status SetCommunicator(Communicator* comm) override {
    if (comm && !comm->has_device_collectives())
      return Unimplemented(
          "the cuda backend reduces gradients over NCCL, but this job's communicator works in "
          "host memory only: join the job for device cuda (amp-train --device cuda does; "
          "ProcessGroup::FromEnvironment(timeout, \"cuda\"))");
    comm_ = comm;
    return Status::Ok();
  }

 private:
  // Waits for the queued work; with NCCL collectives in it, bounded by the
  // collective timeout (a rank that stopped fails the step, not hangs it).
  Status Drain(const char* what) {
    if (comm_) AMP_RETURN_IF_ERROR(comm_->DeviceWait(stream_));
    return CudaCheck(cudaStreamSynchronize(stream_), what);
  }

  static constexpr size_t kWorkspace = size_t{32} << 20;
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* workspace_ = nullptr;
  Communicator* comm_ = nullptr;
  std::unique_ptr<CudnnAttention> cudnn_;  // null where cuDNN cannot be loaded
  std::string no_cudnn_;                   // why not
};

}  // namespace

std::unique_ptr<KernelSupport> CreateCudaKernelSupport() {
  return std::make_unique<CudaKernelSupport>();
}

std::vector<std::string> CudaKernelOpNames() {
  std::vector<std::string> names;
  for (const auto& [key, fn] : Table()) names.push_back(key);
  std::sort(names.begin(), names.end());
  return names;
}

StatusOr<std::unique_ptr<Backend>> CreateCudaBackend() {
  auto b = std::make_unique<CudaBackend>();
  AMP_RETURN_IF_ERROR(b->Init());
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace amp
