// Elementwise kernels (unary, binary with broadcasting, Where, Cast,
// comparisons, the variadic Sum/Mean/Max/Min), then their launchers. One
// generic kernel with the op as a run-time switch: simple and correct first;
// the fused kernels come with the fusion pass.
#include <cstring>

#include "kernels/cuda/common.cuh"

namespace amp::cuda {
namespace {

__device__ float UnaryF(EwOp op, float x, float alpha, float beta) {
  switch (op) {
    case EwOp::kIdentity:
    case EwOp::kCast:
      return x;
    case EwOp::kAbs:
      return fabsf(x);
    case EwOp::kNeg:
      return -x;
    case EwOp::kRelu:  // NaN stays NaN (fmaxf(x, 0) would give 0)
      return isnan(x) ? x : (x > 0.f ? x : 0.f);
    case EwOp::kSqrt:
      return sqrtf(x);
    case EwOp::kExp:
      return expf(x);
    case EwOp::kLog:
      return logf(x);
    case EwOp::kErf:
      return erff(x);
    case EwOp::kReciprocal:
      return 1.f / x;
    case EwOp::kTanh:
      return tanhf(x);
    case EwOp::kSigmoid:
      return x >= 0 ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x));
    case EwOp::kSign:
      return isnan(x) ? x : (x > 0 ? 1.f : (x < 0 ? -1.f : 0.f));
    case EwOp::kCeil:
      return ceilf(x);
    case EwOp::kFloor:
      return floorf(x);
    case EwOp::kRound:
      return nearbyintf(x);
    case EwOp::kSin:
      return sinf(x);
    case EwOp::kCos:
      return cosf(x);
    case EwOp::kLeakyRelu:
      return x >= 0 ? x : alpha * x;
    case EwOp::kElu:
      return x > 0 ? x : alpha * (expf(x) - 1.f);
    case EwOp::kGelu:
      return 0.5f * x * (1.f + erff(x * 0.7071067811865476f));
    case EwOp::kGeluTanh:
      return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case EwOp::kSoftplus:
      return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x));
    case EwOp::kSoftsign:
      return x / (1.f + fabsf(x));
    case EwOp::kHardSigmoid:
      return isnan(x) ? x : fmaxf(0.f, fminf(1.f, alpha * x + beta));
    case EwOp::kHardSwish:
      return x * fmaxf(0.f, fminf(1.f, x / 6.f + 0.5f));
    case EwOp::kMish:
      return x * tanhf(x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)));
    case EwOp::kSelu:
      return x > 0 ? beta * x : beta * (alpha * expf(x) - alpha);
    case EwOp::kClip:
      return isnan(x) ? x : fminf(fmaxf(x, alpha), beta);
    default:
      return x;
  }
}

__device__ float BinaryF(EwOp op, float x, float y) {
  switch (op) {
    case EwOp::kAdd:
      return x + y;
    case EwOp::kSub:
      return x - y;
    case EwOp::kMul:
      return x * y;
    case EwOp::kDiv:
      return x / y;
    case EwOp::kPow:
      if (y == 2.f) return x * x;
      if (y == 1.f) return x;
      if (y == 0.5f) return sqrtf(x);
      return powf(x, y);
    case EwOp::kMax:
      return (isnan(x) || isnan(y)) ? nanf("") : fmaxf(x, y);
    case EwOp::kMin:
      return (isnan(x) || isnan(y)) ? nanf("") : fminf(x, y);
    case EwOp::kPRelu:
      return x < 0 ? x * y : x;
    case EwOp::kFMod:
      return fmodf(x, y);
    case EwOp::kMod: {
      float r = fmodf(x, y);
      return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
    }
    default:
      return 0.f;
  }
}

__device__ long long BinaryI(EwOp op, long long x, long long y) {
  switch (op) {
    case EwOp::kAdd:
      return x + y;
    case EwOp::kSub:
      return x - y;
    case EwOp::kMul:
      return x * y;
    case EwOp::kDiv:
      return y == 0 ? 0 : x / y;
    case EwOp::kMax:
      return x > y ? x : y;
    case EwOp::kMin:
      return x < y ? x : y;
    case EwOp::kAnd:
      return x && y;
    case EwOp::kOr:
      return x || y;
    case EwOp::kXor:
      return (x != 0) != (y != 0);
    case EwOp::kFMod:
      return y == 0 ? 0 : x % y;
    case EwOp::kMod: {
      if (y == 0) return 0;
      long long r = x % y;
      return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
    }
    case EwOp::kPow: {
      long long r = 1;
      for (long long e = 0; e < y; ++e) r *= x;
      return r;
    }
    default:
      return 0;
  }
}

struct Inputs {
  DevPtr p[4];
};

__global__ void ElementwiseKernel(EwOp op, Inputs in, int n_in, void* out, int out_dt, Strided s,
                                  int64_t n, float alpha, float beta) {
  AMP_GRID_LOOP(i, n) {
    int64_t off[4];
    Offsets(s, i, n_in, off);
    const DevPtr& a = in.p[0];
    if (op == EwOp::kWhere) {
      bool c = LoadI(a.data, a.dtype, off[0]) != 0;
      const DevPtr& src = c ? in.p[1] : in.p[2];
      int64_t o = c ? off[1] : off[2];
      if (IsFloatType(out_dt))
        StoreF(out, out_dt, i, LoadF(src.data, src.dtype, o));
      else
        StoreI(out, out_dt, i, LoadI(src.data, src.dtype, o));
      continue;
    }
    if (op >= EwOp::kEqual) {  // comparisons: in the inputs' type, bool out
      bool r;
      const DevPtr& b = in.p[1];
      if (IsFloatType(a.dtype)) {
        float x = LoadF(a.data, a.dtype, off[0]), y = LoadF(b.data, b.dtype, off[1]);
        r = op == EwOp::kEqual       ? x == y
            : op == EwOp::kGreater   ? x > y
            : op == EwOp::kGreaterEq ? x >= y
            : op == EwOp::kLess      ? x < y
                                     : x <= y;
      } else {
        long long x = LoadI(a.data, a.dtype, off[0]), y = LoadI(b.data, b.dtype, off[1]);
        r = op == EwOp::kEqual       ? x == y
            : op == EwOp::kGreater   ? x > y
            : op == EwOp::kGreaterEq ? x >= y
            : op == EwOp::kLess      ? x < y
                                     : x <= y;
      }
      StoreI(out, kBool, i, r);
      continue;
    }
    if (op == EwOp::kIsNaN || op == EwOp::kIsInf) {
      float x = LoadF(a.data, a.dtype, off[0]);
      bool r = op == EwOp::kIsNaN ? isnan(x)
                                  : (isinf(x) && ((x > 0 && alpha != 0) || (x < 0 && beta != 0)));
      StoreI(out, kBool, i, r);
      continue;
    }
    if (op == EwOp::kNot) {
      StoreI(out, kBool, i, LoadI(a.data, a.dtype, off[0]) == 0);
      continue;
    }
    if (op == EwOp::kCast) {
      if (out_dt == kBool)
        StoreI(out, out_dt, i,
               IsFloatType(a.dtype) ? LoadF(a.data, a.dtype, off[0]) != 0.f
                                    : LoadI(a.data, a.dtype, off[0]) != 0);
      else if (IsFloatType(out_dt))
        StoreF(out, out_dt, i, LoadF(a.data, a.dtype, off[0]));
      else if (IsFloatType(a.dtype)) {
        float x = LoadF(a.data, a.dtype, off[0]);
        StoreI(out, out_dt, i, isnan(x) ? 0 : static_cast<long long>(x));
      } else
        StoreI(out, out_dt, i, LoadI(a.data, a.dtype, off[0]));
      continue;
    }
    if (IsFloatType(out_dt)) {
      float x = LoadF(a.data, a.dtype, off[0]);
      float r = n_in == 1 ? UnaryF(op, x, alpha, beta)
                          : BinaryF(op, x, LoadF(in.p[1].data, in.p[1].dtype, off[1]));
      StoreF(out, out_dt, i, r);
    } else {
      long long x = LoadI(a.data, a.dtype, off[0]);
      long long r;
      if (n_in == 1) {
        switch (op) {
          case EwOp::kAbs:
            r = x < 0 ? -x : x;
            break;
          case EwOp::kNeg:
            r = -x;
            break;
          case EwOp::kRelu:
            r = x > 0 ? x : 0;
            break;
          case EwOp::kSign:
            r = x > 0 ? 1 : (x < 0 ? -1 : 0);
            break;
          case EwOp::kClip: {
            float f = static_cast<float>(x);
            r = static_cast<long long>(fminf(fmaxf(f, alpha), beta));
            break;
          }
          default:
            r = x;
            break;
        }
      } else {
        r = BinaryI(op, x, LoadI(in.p[1].data, in.p[1].dtype, off[1]));
      }
      StoreI(out, out_dt, i, r);
    }
  }
}

__global__ void VariadicKernel(int kind, Inputs in, int n_in, void* out, int out_dt, Strided s,
                               int64_t n, float divide_by) {
  AMP_GRID_LOOP(i, n) {
    int64_t off[4];
    Offsets(s, i, n_in, off);
    if (IsFloatType(out_dt)) {
      float acc = LoadF(in.p[0].data, in.p[0].dtype, off[0]);
      for (int k = 1; k < n_in; ++k) {
        float v = LoadF(in.p[k].data, in.p[k].dtype, off[k]);
        // Max/Min: NaN from any input stays NaN (fmaxf/fminf drop it).
        acc = kind <= 1                ? acc + v
              : isnan(acc) || isnan(v) ? nanf("")
              : kind == 2              ? fmaxf(acc, v)
                                       : fminf(acc, v);
      }
      if (kind == 1) acc /= divide_by;
      StoreF(out, out_dt, i, acc);
    } else {
      long long acc = LoadI(in.p[0].data, in.p[0].dtype, off[0]);
      for (int k = 1; k < n_in; ++k) {
        long long v = LoadI(in.p[k].data, in.p[k].dtype, off[k]);
        acc = kind <= 1 ? acc + v : kind == 2 ? (acc > v ? acc : v) : (acc < v ? acc : v);
      }
      if (kind == 1) acc = static_cast<long long>(acc / divide_by);
      StoreI(out, out_dt, i, acc);
    }
  }
}

// One instruction of a fused program on FP32 registers (bool as 0/1).
__device__ float FusedOp(const FusedInstrDev& in, float x, float y, float z) {
  switch (in.op) {
    case EwOp::kIdentity:
      return x;
    case EwOp::kCast:
      return in.type == kBool ? (x != 0.f ? 1.f : 0.f) : x;
    case EwOp::kEqual:
      return x == y;
    case EwOp::kGreater:
      return x > y;
    case EwOp::kGreaterEq:
      return x >= y;
    case EwOp::kLess:
      return x < y;
    case EwOp::kLessEq:
      return x <= y;
    case EwOp::kAnd:
      return (x != 0.f) && (y != 0.f);
    case EwOp::kOr:
      return (x != 0.f) || (y != 0.f);
    case EwOp::kXor:
      return (x != 0.f) != (y != 0.f);
    case EwOp::kNot:
      return x == 0.f;
    case EwOp::kIsNaN:
      return isnan(x);
    case EwOp::kIsInf:
      return isinf(x) && ((x > 0 && in.alpha != 0) || (x < 0 && in.beta != 0));
    case EwOp::kWhere:
      return x != 0.f ? y : z;
    case EwOp::kAdd:  // Sum of three: (x + y) + z
      return in.args[2] >= 0 ? (x + y) + z : x + y;
    default:
      return in.args[1] >= 0 ? BinaryF(in.op, x, y) : UnaryF(in.op, x, in.alpha, in.beta);
  }
}

__global__ void FusedKernel(FusedProgramDev p, int64_t n) {
  AMP_GRID_LOOP(i, n) {
    float r[kFusedMaxInputs + kFusedMaxInstrs];
    for (int k = 0; k < p.n_in; ++k) {
      int64_t off = 0, rest = i;
      for (int d = p.rank - 1; d >= 0; --d) {
        off += (rest % p.dims[d]) * p.strides[k][d];
        rest /= p.dims[d];
      }
      const DevPtr& src = p.in[k];
      r[k] = src.dtype == kBool ? static_cast<float>(LoadI(src.data, kBool, off) != 0)
                                : LoadF(src.data, src.dtype, off);
    }
    for (int j = 0; j < p.n_instr; ++j) {
      const FusedInstrDev& in = p.instrs[j];
      float x = r[in.args[0]];
      float y = in.args[1] >= 0 ? r[in.args[1]] : 0.f;
      float z = in.args[2] >= 0 ? r[in.args[2]] : 0.f;
      float v = FusedOp(in, x, y, z);
      if (in.type == kF16)
        v = __half2float(__float2half_rn(v));
      else if (in.type == kBF16)
        v = __bfloat162float(__float2bfloat16_rn(v));
      r[p.n_in + j] = v;
    }
    for (int o = 0; o < p.n_out; ++o) {
      float v = r[p.out_reg[o]];
      if (p.out_dtype[o] == kBool)
        StoreI(p.out[o], kBool, i, v != 0.f);
      else
        StoreF(p.out[o], p.out_dtype[o], i, v);
    }
  }
}

constexpr int kMultiCastTensors = 64;
struct MultiCastTensors {
  DevPtr in[kMultiCastTensors];
  void* out[kMultiCastTensors];
  int64_t n[kMultiCastTensors];
};

// blockIdx.y picks the tensor.
__global__ void MultiCastKernel(MultiCastTensors t, int out_dt) {
  int k = blockIdx.y;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < t.n[k];
       i += int64_t{gridDim.x} * blockDim.x)
    StoreF(t.out[k], out_dt, i, LoadF(t.in[k].data, t.in[k].dtype, i));
}

}  // namespace

Status MultiCast(int n_tensors, const DevPtr* in, void* const* out, const int64_t* sizes,
                 int out_dtype, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  for (int start = 0; start < n_tensors; start += kMultiCastTensors) {
    int count = n_tensors - start < kMultiCastTensors ? n_tensors - start : kMultiCastTensors;
    MultiCastTensors t{};
    int64_t largest = 1;
    for (int k = 0; k < count; ++k) {
      t.in[k] = in[start + k];
      t.out[k] = out[start + k];
      t.n[k] = sizes[start + k];
      largest = sizes[start + k] > largest ? sizes[start + k] : largest;
    }
    dim3 grid(static_cast<unsigned>(Blocks(largest) < 1024 ? Blocks(largest) : 1024),
              static_cast<unsigned>(count));
    MultiCastKernel<<<grid, kThreads, 0, st>>>(t, out_dtype);
    AMP_RETURN_IF_ERROR(CheckLaunch("MultiCast"));
  }
  return Status::Ok();
}

bool FusedOpCode(const char* op, bool tanh_form, EwOp* code) {
  struct Entry {
    const char* name;
    EwOp code;
  };
  static const Entry kEntries[] = {
      {"Identity", EwOp::kIdentity},
      {"Cast", EwOp::kCast},
      {"Abs", EwOp::kAbs},
      {"Neg", EwOp::kNeg},
      {"Sign", EwOp::kSign},
      {"Relu", EwOp::kRelu},
      {"Ceil", EwOp::kCeil},
      {"Floor", EwOp::kFloor},
      {"Sqrt", EwOp::kSqrt},
      {"Reciprocal", EwOp::kReciprocal},
      {"Exp", EwOp::kExp},
      {"Log", EwOp::kLog},
      {"Erf", EwOp::kErf},
      {"Tanh", EwOp::kTanh},
      {"Sigmoid", EwOp::kSigmoid},
      {"Sin", EwOp::kSin},
      {"Cos", EwOp::kCos},
      {"Softplus", EwOp::kSoftplus},
      {"Softsign", EwOp::kSoftsign},
      {"Mish", EwOp::kMish},
      {"HardSwish", EwOp::kHardSwish},
      {"LeakyRelu", EwOp::kLeakyRelu},
      {"Elu", EwOp::kElu},
      {"Selu", EwOp::kSelu},
      {"HardSigmoid", EwOp::kHardSigmoid},
      {"Gelu", EwOp::kGelu},
      {"IsNaN", EwOp::kIsNaN},
      {"IsInf", EwOp::kIsInf},
      {"Not", EwOp::kNot},
      {"Add", EwOp::kAdd},
      {"Sub", EwOp::kSub},
      {"Mul", EwOp::kMul},
      {"Div", EwOp::kDiv},
      {"Pow", EwOp::kPow},
      {"PRelu", EwOp::kPRelu},
      {"Max", EwOp::kMax},
      {"Min", EwOp::kMin},
      {"Equal", EwOp::kEqual},
      {"Greater", EwOp::kGreater},
      {"GreaterOrEqual", EwOp::kGreaterEq},
      {"Less", EwOp::kLess},
      {"LessOrEqual", EwOp::kLessEq},
      {"And", EwOp::kAnd},
      {"Or", EwOp::kOr},
      {"Xor", EwOp::kXor},
      {"Sum", EwOp::kAdd},
      {"Where", EwOp::kWhere},
  };
  for (const Entry& e : kEntries)
    if (std::strcmp(e.name, op) == 0) {
      *code = e.code == EwOp::kGelu && tanh_form ? EwOp::kGeluTanh : e.code;
      return true;
    }
  return false;
}

Status FusedElementwise(const FusedProgramDev& program, void* stream) {
  int64_t n = 1;
  for (int d = 0; d < program.rank; ++d) n *= program.dims[d];
  if (n == 0) return Status::Ok();
  if (program.n_in < 1 || program.n_in > kFusedMaxInputs || program.n_instr < 1 ||
      program.n_instr > kFusedMaxInstrs || program.n_out < 1 || program.n_out > kFusedMaxInstrs)
    return Internal("FusedElementwise: ", program.n_in, " inputs, ", program.n_instr,
                    " instructions, ", program.n_out, " outputs");
  FusedKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(program, n);
  return CheckLaunch("FusedElementwise");
}

Status Elementwise(EwOp op, const DevPtr* in, int n_in, void* out, int out_dtype, const Strided& s,
                   float alpha, float beta, void* stream) {
  int64_t n = Total(s);
  if (n == 0) return Status::Ok();
  if (n_in < 1 || n_in > 3) return Internal("Elementwise: ", n_in, " inputs");
  Inputs ins;
  for (int k = 0; k < n_in; ++k) ins.p[k] = in[k];
  ElementwiseKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      op, ins, n_in, out, out_dtype, s, n, alpha, beta);
  return CheckLaunch("Elementwise");
}

Status EwVariadic(int kind, const DevPtr* in, int n_in, void* out, int out_dtype, const Strided& s,
                  float divide_by, void* stream) {
  int64_t n = Total(s);
  if (n == 0) return Status::Ok();
  if (n_in < 1 || n_in > 4) return Internal("EwVariadic: ", n_in, " inputs");
  Inputs ins;
  for (int k = 0; k < n_in; ++k) ins.p[k] = in[k];
  VariadicKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      kind, ins, n_in, out, out_dtype, s, n, divide_by);
  return CheckLaunch("EwVariadic");
}

}  // namespace amp::cuda
