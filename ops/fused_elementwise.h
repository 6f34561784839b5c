// ai.amp FusedElementwise: a chain of elementwise ops over one output shape,
// computed in one pass over the elements (fuse-elementwise makes it at
// specialization; the backends interpret the program or generate code from
// it).
//
// The node's inputs broadcast (numpy rules) to the output shape; every output
// has that shape. The program is a list of instructions over registers:
// registers 0..n-1 hold the node's n inputs, register n+k the result of
// instruction k. An instruction computes one ONNX op exactly as its own
// kernel would (loaded into FP32, computed, rounded once to its result type),
// so a fused chain gives the unfused chain's values bit for bit.
//
// Attributes (one entry per instruction unless said):
//   ops     strings  the ONNX op (see FusableOps)
//   args    ints     3 per instruction: the registers read, -1 past the op's arity
//   types   ints     the result's element type (ONNX numbers)
//   params  floats   2 per instruction: the op's float attributes (FusableOps)
//   results ints     one per output: the register it stores
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir.h"
#include "compiler/status.h"

namespace amp {

struct FusedInstr {
  std::string op;
  DType type = DType::kUndefined;
  int args[3] = {-1, -1, -1};
  float params[2] = {0, 0};
};

struct FusedProgram {
  static constexpr int kMaxInputs = 16;
  static constexpr int kMaxInstrs = 64;
  int num_inputs = 0;
  std::vector<FusedInstr> instrs;
  std::vector<int> results;  // per output: its register
  int num_registers() const { return num_inputs + static_cast<int>(instrs.size()); }
};

// An op a program may hold: its arity and how its float attributes become
// the instruction's two params.
struct FusableOp {
  std::string_view op;
  int min_args = 1, max_args = 1;
  // params from the node's attributes (null: none).
  void (*params)(const Node& n, float out[2]) = nullptr;
};

// Every op a program may hold (the backends' fused kernels implement all).
const std::vector<FusableOp>& FusableOps();
const FusableOp* FindFusableOp(std::string_view op);

// The program of a node, from its attributes (looked up by name: a Node's or
// a KernelAttrs'), checked: every op known, arity, registers read before
// they are written, types the program may hold, one result per output.
StatusOr<FusedProgram> DecodeFusedProgram(
    const std::function<const Attribute*(std::string_view)>& attr, int num_inputs, int num_outputs);
// Writes `p` as the node's attributes.
void EncodeFusedProgram(const FusedProgram& p, Node& n);

// The element types a program computes on: float32, float16, bfloat16, bool.
bool FusableType(DType t);

}  // namespace amp
