// Import-time legalization: the forms exporters write that amp's IR holds
// differently, rewritten before shape inference.
//
// SplitToSequence read only by SequenceAt at constant positions (the dynamo
// exporter's torch.split, e.g. GPT-2's fused q/k/v projection) becomes one
// Slice per position: amp has no sequence type, and each Slice has a
// gradient.
//
//   before:  seq = SplitToSequence <axis = 2> (qkv, c64)
//            q = SequenceAt (seq, c0)        k = SequenceAt (seq, c1)
//   after:   q = Slice (qkv, [0], [64], [2])  k = Slice (qkv, [64], [128], [2])
//
// Any other use of a sequence stays an error naming the node.
//
// After shape inference (LegalizeTyped): CastLike becomes the Cast to its
// second input's type, fixed at import (the dynamo exporter's scalar
// constants): the precision passes may later store that input in half, which
// would change what CastLike means.
//
//   before:  y = CastLike (x, like)        # like: float
//   after:   y = Cast <to = 1> (x)
#pragma once

#include "compiler/ir.h"
#include "compiler/status.h"

namespace amp {

Status LegalizeImport(Model& model);
Status LegalizeTyped(Model& model);

}  // namespace amp
