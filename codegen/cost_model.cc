#include "codegen/cost_model.h"

#include <algorithm>
#include <cstdio>

#include "ops/op_def.h"

namespace amp {
namespace {

bool IsView(const Executable& exe, const Call& c) {
  // A call whose output shares its input's bytes (the memory plan's views)
  // copies nothing: no launch.
  if (c.inputs.empty() || c.outputs.empty() || c.inputs[0] < 0) return false;
  const Slot& in = exe.slots[c.inputs[0]];
  const Slot& out = exe.slots[c.outputs[0]];
  return in.kind == SlotKind::kArena && out.kind == SlotKind::kArena && in.offset == out.offset &&
         in.nbytes() == out.nbytes();
}

}  // namespace

const std::vector<DeviceModel>& DeviceModels() {
  static const std::vector<DeviceModel> models = {
      {"h200", 788e12, 67e12, 4.3e12, 2e-6,
       "matrix rate and copy bandwidth measured on the lent H200 (KINDS.md, 2026-10-28: bf16 "
       "8192^3 GEMM 788 TFLOP/s, device copy 4.3 TB/s); fp32 vector rate from the datasheet"},
      {"h100", 788e12, 67e12, 3.0e12, 2e-6,
       "the H200's measured matrix rate (same chip); bandwidth the H200's measured fraction (0.9) "
       "of the H100 SXM datasheet's 3.35 TB/s; fp32 vector rate from the datasheet"},
  };
  return models;
}

StatusOr<DeviceModel> FindDeviceModel(std::string_view name) {
  std::string names;
  for (const DeviceModel& d : DeviceModels()) {
    if (d.name == name) return d;
    names += (names.empty() ? "" : ", ") + d.name;
  }
  return InvalidArgument("unknown device model '", name, "' (amp knows ", names, ")");
}

StepCost EstimateCost(const Executable& exe, const DeviceModel& device) {
  StepCost cost;
  cost.arena_bytes = static_cast<int64_t>(exe.arena_bytes);
  for (const Slot& s : exe.slots) {
    if (s.kind == SlotKind::kPersistent || s.kind == SlotKind::kConstant)
      cost.state_bytes += static_cast<int64_t>(s.nbytes());
    if (s.kind == SlotKind::kInput) cost.input_bytes += static_cast<int64_t>(s.nbytes());
  }
  cost.peak_bytes = cost.arena_bytes + cost.state_bytes + cost.input_bytes;
  for (const Call& c : exe.program) {
    if (IsView(exe, c)) continue;
    KernelCost k;
    k.node = c.node;
    int64_t elements[2] = {0, 0};  // read, written
    for (int side = 0; side < 2; ++side)
      for (int i : side == 0 ? c.inputs : c.outputs) {
        if (i < 0) continue;
        const Slot& s = exe.slots[i];
        k.bytes += static_cast<int64_t>(s.nbytes());
        elements[side] +=
            static_cast<int64_t>(s.nbytes() / std::max<size_t>(DTypeSize(s.dtype), 1));
      }
    int64_t largest = std::max(elements[0], elements[1]);
    const OpDef* def = FindOp(c.node->domain(), c.node->op_type());
    if (def && def->matrix_flops) {
      k.flops = def->matrix_flops(*c.node);
      k.matrix = c.inputs[0] >= 0 && IsHalf(exe.slots[c.inputs[0]].dtype);
    } else {
      k.flops = largest;
    }
    double rate = k.matrix ? device.matrix_flops_per_s : device.vector_flops_per_s;
    k.seconds = std::max(static_cast<double>(k.flops) / rate,
                         static_cast<double>(k.bytes) / device.bytes_per_s) +
                device.launch_s;
    cost.launches += 1;
    cost.flops += k.flops;
    cost.bytes += k.bytes;
    cost.predicted_s += k.seconds;
    cost.kernels.push_back(k);
  }
  std::stable_sort(cost.kernels.begin(), cost.kernels.end(),
                   [](const KernelCost& a, const KernelCost& b) { return a.seconds > b.seconds; });
  return cost;
}

nlohmann::json CostToJson(const StepCost& cost, const DeviceModel& device, size_t top) {
  nlohmann::json kernels = nlohmann::json::array();
  for (size_t i = 0; i < cost.kernels.size() && i < top; ++i) {
    const KernelCost& k = cost.kernels[i];
    kernels.push_back({{"node", k.node->Describe()},
                       {"op", k.node->op_type()},
                       {"flops", k.flops},
                       {"bytes", k.bytes},
                       {"rate", k.matrix ? "matrix" : "vector"},
                       {"predicted_ms", k.seconds * 1e3}});
  }
  return {{"device_model", device.name},
          {"device_source", device.source},
          {"launches", cost.launches},
          {"flops", cost.flops},
          {"bytes", cost.bytes},
          {"peak_bytes", cost.peak_bytes},
          {"arena_bytes", cost.arena_bytes},
          {"state_bytes", cost.state_bytes},
          {"input_bytes", cost.input_bytes},
          {"predicted_ms", cost.predicted_s * 1e3},
          {"top_kernels", kernels}};
}

std::string FormatCost(const nlohmann::json& c) {
  char line[512];
  std::string out;
  auto mib = [](const nlohmann::json& v) { return v.get<double>() / (1 << 20); };
  std::snprintf(line, sizeof(line),
                "cost (%s): %lld launches, %.3f GFLOP, %.1f MiB moved, predicted %.3f ms\n",
                c["device_model"].get<std::string>().c_str(), c["launches"].get<long long>(),
                c["flops"].get<double>() / 1e9, mib(c["bytes"]), c["predicted_ms"].get<double>());
  out += line;
  std::snprintf(
      line, sizeof(line), "peak %.1f MiB = arena %.1f + state and constants %.1f + inputs %.1f\n",
      mib(c["peak_bytes"]), mib(c["arena_bytes"]), mib(c["state_bytes"]), mib(c["input_bytes"]));
  out += line;
  out += "most expensive kernels:\n";
  for (const auto& k : c["top_kernels"]) {
    std::snprintf(line, sizeof(line), "  %8.4f ms  %-7s %s\n", k["predicted_ms"].get<double>(),
                  k["rate"].get<std::string>().c_str(), k["node"].get<std::string>().c_str());
    out += line;
  }
  return out;
}

}  // namespace amp
