// The cost of one step, decided by the compiler and measured without a GPU:
// for an Executable (a step specialized to its input shapes for a backend),
// the kernel launches, flops, device-memory traffic and planned peak, and a
// predicted time on a named device. Per kernel the prediction is the larger
// of its flops over the rate that applies (the matrix engines' for matrix
// ops on half inputs, else the vector rate) and its bytes over the memory
// bandwidth, plus a fixed launch cost; the step is their sum (one stream, no
// overlap). The ceilings are in DeviceModels() and docs/PERFORMANCE.md.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/executable.h"

namespace amp {

struct DeviceModel {
  std::string name;
  double matrix_flops_per_s;  // dense fp16/bf16 on the matrix engines
  double vector_flops_per_s;  // FP32 on the vector units
  double bytes_per_s;         // device-memory bandwidth (read + write)
  double launch_s;            // fixed cost of one kernel launch
  std::string source;         // where the ceilings come from
};

const std::vector<DeviceModel>& DeviceModels();
StatusOr<DeviceModel> FindDeviceModel(std::string_view name);

struct KernelCost {
  const Node* node = nullptr;  // null for the copy of a state's update after the step
  std::string label;           // the node, or "update of <state>"
  std::string op;
  int64_t flops = 0;
  int64_t bytes = 0;  // inputs read once, outputs written once
  bool matrix = false;
  bool library = false;  // run by a library's kernels (cuDNN's fused attention)
  int launches = 1;      // the kernels the node's lowering launches
  double seconds = 0;
};

struct StepCost {
  int64_t launches = 0;  // calls that run a kernel (views that share bytes do not)
  int64_t flops = 0;
  int64_t bytes = 0;
  // Planned arena + persistent state and constants + step inputs.
  int64_t peak_bytes = 0;
  int64_t arena_bytes = 0;
  int64_t state_bytes = 0;
  int64_t input_bytes = 0;
  double predicted_s = 0;
  std::vector<KernelCost> kernels;  // every launch, most expensive first
  // What holds the arena's peak: the program point where the most arena
  // bytes are live (views counted once), and the values live there, largest
  // first.
  int64_t live_peak_bytes = 0;
  const Node* live_peak_at = nullptr;
  std::vector<std::pair<const Value*, int64_t>> live_at_peak;
};

StepCost EstimateCost(const Executable& exe, const DeviceModel& device);

// The report's "cost" object: the totals, the device and the `top` most
// expensive kernels.
nlohmann::json CostToJson(const StepCost& cost, const DeviceModel& device, size_t top = 10);
// The same in a few lines of text.
std::string FormatCost(const nlohmann::json& cost);

}  // namespace amp
