// Helpers shared by the ops' type and shape inference (ops/*.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "compiler/shape.h"
#include "ops/inference_context.h"

namespace amp {

StatusOr<int64_t> NormalizeAxis(const InferenceContext& c, int64_t axis, int64_t rank);

// Numpy-style broadcast of two dims; unknown when it cannot be decided.
StatusOr<Dim> BroadcastDim(const InferenceContext& c, const Dim& a, const Dim& b);

StatusOr<std::optional<Shape>> Broadcast(const InferenceContext& c,
                                         const std::vector<size_t>& inputs);

std::optional<std::vector<int64_t>> ConstInts(const InferenceContext& c, size_t i);

Status RequireFloat(const InferenceContext& c, size_t i);

// Input i, when present and of known shape, has exactly `rank` dims.
Status RequireRank(const InferenceContext& c, size_t i, size_t rank, const char* what);

Status SameDType(const InferenceContext& c, const std::vector<size_t>& inputs);

Dim MulDims(const Dim& a, const Dim& b);

Status InferUnary(InferenceContext& c);

Status InferUnaryFloat(InferenceContext& c);

// Spatial output dims for Conv and pooling.
StatusOr<Shape> SpatialOut(const InferenceContext& c, const Shape& x,
                           const std::vector<int64_t>& kernel, bool ceil_mode);

// Elements of a value whose shape is static (cost functions; 0 otherwise).
int64_t StaticNumel(const Value& v);

}  // namespace amp
