// Recurrent layers: RNN, GRU, LSTM (forward only).
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

// RNN, GRU, LSTM: Y [seq, dirs, batch, hidden], Y_h and Y_c [dirs, batch, hidden]
// (layout 0).
Status InferRecurrent(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  int64_t hidden = c.node().GetInt("hidden_size", -1);
  if (hidden <= 0) return c.Error("hidden_size is required");
  std::string direction = c.node().GetString("direction", "forward");
  Dim dirs(direction == "bidirectional" ? 2 : 1);
  // layout 1: X [batch, seq, input], Y [batch, seq, dirs, hidden], Y_h [batch, dirs, hidden].
  bool batch_first = c.node().GetInt("layout", 0) != 0;
  const auto& x = c.input_shape(0);
  Dim seq, batch;
  if (x && x->size() == 3) {
    seq = (*x)[batch_first ? 1 : 0];
    batch = (*x)[batch_first ? 0 : 1];
  }
  if (c.num_outputs() > 0)
    c.SetOutput(
        0, c.input_dtype(0),
        batch_first ? Shape{batch, seq, dirs, Dim(hidden)} : Shape{seq, dirs, batch, Dim(hidden)});
  for (size_t i = 1; i < c.num_outputs(); ++i)
    c.SetOutput(i, c.input_dtype(0),
                batch_first ? Shape{batch, dirs, Dim(hidden)} : Shape{dirs, batch, Dim(hidden)});
  return Status::Ok();
}

// ---- gradients ----

// (none: see each record's no_grad)

}  // namespace

std::vector<OpDef> RnnOps() {
  return {
      {.op_type = "RNN",
       .arity = {3, 6, 0, 2},
       .infer = InferRecurrent,
       .precision = {OpClass::kHalf, "recurrent cell made of GEMMs"},
       .no_grad = "no gradient rule yet"},
      {.op_type = "GRU",
       .arity = {3, 6, 0, 2},
       .infer = InferRecurrent,
       .precision = {OpClass::kHalf, "recurrent cell made of GEMMs"},
       .no_grad = "no gradient rule yet"},
      {.op_type = "LSTM",
       .arity = {3, 8, 0, 3},
       .infer = InferRecurrent,
       .precision = {OpClass::kHalf, "recurrent cell made of GEMMs"},
       .no_grad = "no gradient rule yet"},
  };
}

}  // namespace amp
