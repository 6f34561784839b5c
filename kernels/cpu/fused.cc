// ai.amp FusedElementwise (fuse-elementwise): the program's instructions
// interpreted over blocks of elements. Each block of every input is loaded
// into FP32 registers (broadcast where an input is smaller), each
// instruction runs over the block with the op's own arithmetic
// (scalar_math.h) and rounds to its result type, and the results are stored:
// the unfused ops' values bit for bit, with the intermediates never written
// to memory.
#include <cstring>

#include "kernels/cpu/families.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/scalar_math.h"
#include "ops/fused_elementwise.h"

namespace amp::cpu {
namespace {

enum class Kind {
  kUnary,
  kBinary,
  kCompare,
  kLogic,
  kPow,
  kSum,
  kWhere,
  kCopy,
  kCast,
  kIsNaN,
  kIsInf,
  kNot
};

struct Instr {
  Kind kind = Kind::kCopy;
  UnOp un = UnOp::kAbs;
  BinOp bin = BinOp::kAdd;
  DType type = DType::kFloat32;
  int args[3] = {-1, -1, -1};
  double p0 = 0, p1 = 0;
};

struct OpCode {
  std::string_view op;
  Kind kind;
  UnOp un;
  BinOp bin;
};

// Every op of FusableOps (ops/fused_elementwise.h); cpu_kernel_test checks
// that none is missing.
const OpCode kCodes[] = {
    {"Identity", Kind::kCopy, UnOp::kAbs, BinOp::kAdd},
    {"Cast", Kind::kCast, UnOp::kAbs, BinOp::kAdd},
    {"Abs", Kind::kUnary, UnOp::kAbs, BinOp::kAdd},
    {"Neg", Kind::kUnary, UnOp::kNeg, BinOp::kAdd},
    {"Sign", Kind::kUnary, UnOp::kSign, BinOp::kAdd},
    {"Relu", Kind::kUnary, UnOp::kRelu, BinOp::kAdd},
    {"Ceil", Kind::kUnary, UnOp::kCeil, BinOp::kAdd},
    {"Floor", Kind::kUnary, UnOp::kFloor, BinOp::kAdd},
    {"Sqrt", Kind::kUnary, UnOp::kSqrt, BinOp::kAdd},
    {"Reciprocal", Kind::kUnary, UnOp::kReciprocal, BinOp::kAdd},
    {"Exp", Kind::kUnary, UnOp::kExp, BinOp::kAdd},
    {"Log", Kind::kUnary, UnOp::kLog, BinOp::kAdd},
    {"Erf", Kind::kUnary, UnOp::kErf, BinOp::kAdd},
    {"Tanh", Kind::kUnary, UnOp::kTanh, BinOp::kAdd},
    {"Sigmoid", Kind::kUnary, UnOp::kSigmoid, BinOp::kAdd},
    {"Sin", Kind::kUnary, UnOp::kSin, BinOp::kAdd},
    {"Cos", Kind::kUnary, UnOp::kCos, BinOp::kAdd},
    {"Softplus", Kind::kUnary, UnOp::kSoftplus, BinOp::kAdd},
    {"Softsign", Kind::kUnary, UnOp::kSoftsign, BinOp::kAdd},
    {"Mish", Kind::kUnary, UnOp::kMish, BinOp::kAdd},
    {"HardSwish", Kind::kUnary, UnOp::kHardSwish, BinOp::kAdd},
    {"LeakyRelu", Kind::kUnary, UnOp::kLeakyRelu, BinOp::kAdd},
    {"Elu", Kind::kUnary, UnOp::kElu, BinOp::kAdd},
    {"Selu", Kind::kUnary, UnOp::kSelu, BinOp::kAdd},
    {"HardSigmoid", Kind::kUnary, UnOp::kHardSigmoid, BinOp::kAdd},
    {"Gelu", Kind::kUnary, UnOp::kGelu, BinOp::kAdd},
    {"IsNaN", Kind::kIsNaN, UnOp::kAbs, BinOp::kAdd},
    {"IsInf", Kind::kIsInf, UnOp::kAbs, BinOp::kAdd},
    {"Not", Kind::kNot, UnOp::kAbs, BinOp::kAdd},
    {"Add", Kind::kBinary, UnOp::kAbs, BinOp::kAdd},
    {"Sub", Kind::kBinary, UnOp::kAbs, BinOp::kSub},
    {"Mul", Kind::kBinary, UnOp::kAbs, BinOp::kMul},
    {"Div", Kind::kBinary, UnOp::kAbs, BinOp::kDiv},
    {"PRelu", Kind::kBinary, UnOp::kAbs, BinOp::kPRelu},
    {"Max", Kind::kBinary, UnOp::kAbs, BinOp::kMax},
    {"Min", Kind::kBinary, UnOp::kAbs, BinOp::kMin},
    {"Pow", Kind::kPow, UnOp::kAbs, BinOp::kAdd},
    {"Equal", Kind::kCompare, UnOp::kAbs, BinOp::kEqual},
    {"Greater", Kind::kCompare, UnOp::kAbs, BinOp::kGreater},
    {"GreaterOrEqual", Kind::kCompare, UnOp::kAbs, BinOp::kGreaterEq},
    {"Less", Kind::kCompare, UnOp::kAbs, BinOp::kLess},
    {"LessOrEqual", Kind::kCompare, UnOp::kAbs, BinOp::kLessEq},
    {"And", Kind::kLogic, UnOp::kAbs, BinOp::kAnd},
    {"Or", Kind::kLogic, UnOp::kAbs, BinOp::kOr},
    {"Xor", Kind::kLogic, UnOp::kAbs, BinOp::kXor},
    {"Sum", Kind::kSum, UnOp::kAbs, BinOp::kAdd},
    {"Where", Kind::kWhere, UnOp::kAbs, BinOp::kAdd},
};

const OpCode* FindCode(std::string_view op) {
  for (const OpCode& c : kCodes)
    if (c.op == op) return &c;
  return nullptr;
}

constexpr int64_t kBlock = 256;

void RunUnary(UnOp op, const float* a, float* r, int64_t n, double p0, double p1) {
  switch (op) {
#define AMP_CASE(Op)                                                          \
  case UnOp::Op:                                                              \
    for (int64_t i = 0; i < n; ++i) r[i] = UnaryMath<UnOp::Op>(a[i], p0, p1); \
    break;
    AMP_CASE(kAbs)
    AMP_CASE(kNeg)
    AMP_CASE(kSign)
    AMP_CASE(kRelu)
    AMP_CASE(kCeil)
    AMP_CASE(kFloor)
    AMP_CASE(kRound)
    AMP_CASE(kCos)
    AMP_CASE(kSin)
    AMP_CASE(kTanh)
    AMP_CASE(kErf)
    AMP_CASE(kExp)
    AMP_CASE(kLog)
    AMP_CASE(kSqrt)
    AMP_CASE(kReciprocal)
    AMP_CASE(kSigmoid)
    AMP_CASE(kSoftplus)
    AMP_CASE(kSoftsign)
    AMP_CASE(kMish)
    AMP_CASE(kHardSwish)
    AMP_CASE(kElu)
    AMP_CASE(kLeakyRelu)
    AMP_CASE(kSelu)
    AMP_CASE(kHardSigmoid)
    AMP_CASE(kGelu)
#undef AMP_CASE
  }
}

void RunBinary(BinOp op, const float* a, const float* b, float* r, int64_t n) {
  switch (op) {
#define AMP_CASE(Op)                                                                 \
  case BinOp::Op:                                                                    \
    for (int64_t i = 0; i < n; ++i) r[i] = BinaryMath<float>(BinOp::Op, a[i], b[i]); \
    break;
    AMP_CASE(kAdd)
    AMP_CASE(kSub)
    AMP_CASE(kMul)
    AMP_CASE(kDiv)
    AMP_CASE(kPRelu)
    AMP_CASE(kMax)
    AMP_CASE(kMin)
#undef AMP_CASE
    default:
      for (int64_t i = 0; i < n; ++i) r[i] = BinaryMath<float>(op, a[i], b[i]);
  }
}

// Rounds a block to its element type (FP16/BF16 values are stored that way).
void RoundTo(DType t, float* r, int64_t n) {
  if (t == DType::kFloat16)
    RoundToHalf(r, n);
  else if (t == DType::kBFloat16)
    for (int64_t i = 0; i < n; ++i) r[i] = BFloat16ToFloat(FloatToBFloat16(r[i]));
}

void Exec(const Instr& in, float* const* regs, float* r, int64_t n) {
  const float* a = regs[in.args[0]];
  const float* b = in.args[1] >= 0 ? regs[in.args[1]] : nullptr;
  const float* c = in.args[2] >= 0 ? regs[in.args[2]] : nullptr;
  switch (in.kind) {
    case Kind::kUnary:
      RunUnary(in.un, a, r, n, in.p0, in.p1);
      break;
    case Kind::kBinary:
      RunBinary(in.bin, a, b, r, n);
      break;
    case Kind::kCompare:
      for (int64_t i = 0; i < n; ++i) r[i] = CompareMath(in.bin, a[i], b[i]) ? 1.f : 0.f;
      break;
    case Kind::kLogic:
      for (int64_t i = 0; i < n; ++i)
        r[i] = BinaryMath<bool>(in.bin, a[i] != 0, b[i] != 0) ? 1.f : 0.f;
      break;
    case Kind::kPow:
      for (int64_t i = 0; i < n; ++i) r[i] = PowF(a[i], b[i]);
      break;
    case Kind::kSum:
      for (int64_t i = 0; i < n; ++i) r[i] = a[i] + b[i];
      if (c)
        for (int64_t i = 0; i < n; ++i) r[i] = r[i] + c[i];
      break;
    case Kind::kWhere:
      for (int64_t i = 0; i < n; ++i) r[i] = a[i] != 0 ? b[i] : c[i];
      break;
    case Kind::kCopy:
      std::memcpy(r, a, static_cast<size_t>(n) * sizeof(float));
      break;
    case Kind::kCast:
      if (in.type == DType::kBool)
        for (int64_t i = 0; i < n; ++i) r[i] = a[i] != 0 ? 1.f : 0.f;
      else
        std::memcpy(r, a, static_cast<size_t>(n) * sizeof(float));
      break;
    case Kind::kIsNaN:
      for (int64_t i = 0; i < n; ++i) r[i] = std::isnan(a[i]) ? 1.f : 0.f;
      break;
    case Kind::kIsInf: {
      bool pos = in.p0 != 0, neg = in.p1 != 0;
      for (int64_t i = 0; i < n; ++i)
        r[i] = std::isinf(a[i]) && ((a[i] > 0 && pos) || (a[i] < 0 && neg)) ? 1.f : 0.f;
      break;
    }
    case Kind::kNot:
      for (int64_t i = 0; i < n; ++i) r[i] = a[i] == 0 ? 1.f : 0.f;
      break;
  }
  RoundTo(in.type, r, n);
}

// An input as the block loop reads it: the whole shape, one element, or
// broadcast strides.
struct Operand {
  const TensorRef* t = nullptr;
  enum { kFull, kScalar, kStrided } form = kFull;
  std::vector<int64_t> strides;
};

template <typename T>
void LoadAs(const void* data, const int64_t* offs, int64_t start, int64_t n, bool contiguous,
            float* r) {
  const T* p = static_cast<const T*>(data);
  if (contiguous)
    for (int64_t i = 0; i < n; ++i) r[i] = static_cast<float>(Load(p[start + i]));
  else
    for (int64_t i = 0; i < n; ++i) r[i] = static_cast<float>(Load(p[offs[i]]));
}

void LoadBlock(const Operand& op, const std::vector<int64_t>& dims, int64_t start, int64_t n,
               std::vector<int64_t>& offs, float* r) {
  const TensorRef& t = *op.t;
  bool contiguous = op.form == Operand::kFull;
  if (op.form == Operand::kScalar) {
    float v = 0;
    switch (t.dtype) {
      case DType::kFloat32:
        v = t.as<float>()[0];
        break;
      case DType::kFloat16:
        v = HalfToFloat(t.as<f16>()[0].bits);
        break;
      case DType::kBFloat16:
        v = BFloat16ToFloat(t.as<bf16>()[0].bits);
        break;
      default:
        v = t.as<bool>()[0] ? 1.f : 0.f;
    }
    for (int64_t i = 0; i < n; ++i) r[i] = v;
    return;
  }
  if (op.form == Operand::kStrided) {
    // The multi-index of `start`, then an odometer over the block.
    size_t rank = dims.size();
    std::vector<int64_t> idx(rank);
    int64_t rest = start, off = 0;
    for (size_t d = rank; d-- > 0;) {
      idx[d] = rest % dims[d];
      rest /= dims[d];
      off += idx[d] * op.strides[d];
    }
    for (int64_t i = 0; i < n; ++i) {
      offs[i] = off;
      for (size_t d = rank; d-- > 0;) {
        off += op.strides[d];
        if (++idx[d] < dims[d]) break;
        off -= op.strides[d] * dims[d];
        idx[d] = 0;
      }
    }
  }
  switch (t.dtype) {
    case DType::kFloat32:
      LoadAs<float>(t.data, offs.data(), start, n, contiguous, r);
      break;
    case DType::kFloat16:
      if (contiguous)
        HalfToFloat(&t.as<f16>()[start].bits, r, n);
      else
        LoadAs<f16>(t.data, offs.data(), start, n, contiguous, r);
      break;
    case DType::kBFloat16:
      LoadAs<bf16>(t.data, offs.data(), start, n, contiguous, r);
      break;
    default:
      LoadAs<bool>(t.data, offs.data(), start, n, contiguous, r);
  }
}

void StoreBlock(const float* r, int64_t start, int64_t n, TensorRef& out) {
  switch (out.dtype) {
    case DType::kFloat32:
      std::memcpy(out.as<float>() + start, r, static_cast<size_t>(n) * sizeof(float));
      break;
    case DType::kFloat16:
      FloatToHalf(r, &out.as<f16>()[start].bits, n);
      break;
    case DType::kBFloat16:
      for (int64_t i = 0; i < n; ++i) out.as<bf16>()[start + i] = Store<bf16>(r[i]);
      break;
    default:
      for (int64_t i = 0; i < n; ++i) out.as<bool>()[start + i] = r[i] != 0;
  }
}

Status FusedElementwiseKernel(KernelContext& ctx) {
  int n_in = static_cast<int>(ctx.inputs.size());
  int n_out = static_cast<int>(ctx.outputs.size());
  auto decoded = DecodeFusedProgram([&](std::string_view name) { return ctx.node.FindAttr(name); },
                                    n_in, n_out);
  if (!decoded.ok()) return decoded.status().WithContext(ctx.node.Describe());
  const FusedProgram& p = *decoded;
  std::vector<Instr> instrs;
  for (const FusedInstr& f : p.instrs) {
    const OpCode* code = FindCode(f.op);
    if (!code) return ctx.Error("the CPU runtime cannot run '", f.op, "' in a fused program");
    Instr in;
    in.kind = code->kind;
    in.un = code->un;
    in.bin = code->bin;
    in.type = f.type;
    std::copy(std::begin(f.args), std::end(f.args), in.args);
    in.p0 = f.params[0];
    in.p1 = f.params[1];
    instrs.push_back(in);
  }
  const TensorRef* first = nullptr;
  for (const TensorRef* o : ctx.outputs)
    if (o) first = first ? first : o;
  if (!first) return Status::Ok();
  const std::vector<int64_t>& dims = first->dims;
  int64_t total = first->numel();
  std::vector<Operand> operands(n_in);
  for (int k = 0; k < n_in; ++k) {
    if (!ctx.has_input(k)) return ctx.Error("input ", k, " is missing");
    const TensorRef& t = ctx.in(k);
    if (!FusableType(t.dtype))
      return ctx.Error("input ", k, " is ", DTypeName(t.dtype), "; a fused program cannot hold it");
    operands[k].t = &t;
    if (t.dims == dims) {
      operands[k].form = Operand::kFull;
    } else if (t.numel() == 1) {
      operands[k].form = Operand::kScalar;
    } else {
      if (t.dims.size() > dims.size()) return ctx.Error("input ", k, " does not broadcast");
      operands[k].form = Operand::kStrided;
      operands[k].strides = BroadcastStrides(t.dims, dims);
    }
  }
  for (const TensorRef* o : ctx.outputs)
    if (o && o->dims != dims) return ctx.Error("outputs of different shapes");
  // Blocks are independent: the threads take contiguous runs of them, each
  // with its own registers.
  int64_t blocks = (total + kBlock - 1) / kBlock;
  ParallelFor(blocks, 16, [&](int64_t first, int64_t last) {
    std::vector<float> storage(static_cast<size_t>(p.num_registers()) * kBlock);
    std::vector<float*> regs(p.num_registers());
    for (int k = 0; k < p.num_registers(); ++k) regs[k] = storage.data() + k * kBlock;
    std::vector<int64_t> offs(kBlock);
    for (int64_t b = first; b < last; ++b) {
      int64_t start = b * kBlock, n = std::min(kBlock, total - start);
      for (int k = 0; k < n_in; ++k) LoadBlock(operands[k], dims, start, n, offs, regs[k]);
      for (size_t k = 0; k < instrs.size(); ++k) Exec(instrs[k], regs.data(), regs[n_in + k], n);
      for (int o = 0; o < n_out; ++o)
        if (ctx.has_output(o)) StoreBlock(regs[p.results[o]], start, n, ctx.out(o));
    }
  });
  return Status::Ok();
}

// ai.amp MultiCast (batch-casts): each float input cast to `to`, rounded
// once, as Cast does.
Status MultiCastKernel(KernelContext& ctx) {
  for (size_t k = 0; k < ctx.inputs.size(); ++k) {
    if (!ctx.has_input(k) || !ctx.has_output(k)) continue;
    const TensorRef& in = ctx.in(k);
    TensorRef& out = ctx.out(k);
    bool ok = VisitFloat(in.dtype, [&](auto tin) {
      using TI = typename decltype(tin)::type;
      VisitFloat(out.dtype, [&](auto tout) {
        using TO = typename decltype(tout)::type;
        const TI* p = in.as<TI>();
        TO* o = out.as<TO>();
        ParallelFor(in.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) o[i] = Store<TO>(Load(p[i]));
        });
      });
    });
    if (!ok || !IsFloat(out.dtype)) return ctx.Error("casts float tensors only");
  }
  return Status::Ok();
}

}  // namespace

void RegisterFusedKernels(KernelTable& t) {
  t["ai.amp:FusedElementwise"] = FusedElementwiseKernel;
  t["ai.amp:MultiCast"] = MultiCastKernel;
}

std::vector<std::string> FusedKernelOps() {
  std::vector<std::string> out;
  for (const OpCode& c : kCodes) out.emplace_back(c.op);
  return out;
}

}  // namespace amp::cpu
