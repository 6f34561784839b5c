// The op families' record lists (ops/<family>.cc), gathered in one explicit
// list by ops/registry.cc.
#pragma once

#include <vector>

#include "ops/op_def.h"

namespace amp {

std::vector<OpDef> ElementwiseOps();
std::vector<OpDef> GemmOps();
std::vector<OpDef> ConvOps();
std::vector<OpDef> PoolOps();
std::vector<OpDef> NormOps();
std::vector<OpDef> LossOps();
std::vector<OpDef> ReduceOps();
std::vector<OpDef> DataOps();
std::vector<OpDef> ResizeOps();
std::vector<OpDef> RnnOps();
std::vector<OpDef> TrainingOps();
std::vector<OpDef> FusedOps();
std::vector<OpDef> AttentionOps();

}  // namespace amp
