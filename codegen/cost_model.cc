#include "codegen/cost_model.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "codegen/memory_plan.h"
#include "ops/op_def.h"

namespace amp {
namespace {

bool IsView(const Executable& exe, const Call& c) {
  // A view op whose output shares its input's bytes (the memory plan's
  // views) copies nothing: no launch. (An op writing its result over its
  // input in place shares the bytes too, but it runs.)
  if (c.inputs.empty() || c.outputs.empty() || c.inputs[0] < 0 || !IsViewOp(*c.node)) return false;
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
    // A slot that writes over a piece of state in place has no bytes of its own.
    bool own = s.kind == SlotKind::kConstant ||
               (s.kind == SlotKind::kPersistent && s.buffer == s.value->name());
    if (own) cost.state_bytes += static_cast<int64_t>(s.nbytes());
    if (s.kind == SlotKind::kInput) cost.input_bytes += static_cast<int64_t>(s.nbytes());
  }
  cost.peak_bytes = cost.arena_bytes + cost.state_bytes + cost.input_bytes;
  for (const Call& c : exe.program) {
    if (IsView(exe, c)) continue;
    KernelCost k;
    k.node = c.node;
    k.label = c.node->Describe();
    k.op = c.node->op_type();
    int64_t elements[2] = {0, 0};  // read, written
    for (int side = 0; side < 2; ++side) {
      std::set<int> seen;  // a tensor read twice (the packed q, k, v) is read once
      for (int i : side == 0 ? c.inputs : c.outputs) {
        if (i < 0 || !seen.insert(i).second) continue;
        const Slot& s = exe.slots[i];
        k.bytes += static_cast<int64_t>(s.nbytes());
        elements[side] +=
            static_cast<int64_t>(s.nbytes() / std::max<size_t>(DTypeSize(s.dtype), 1));
      }
    }
    int64_t largest = std::max(elements[0], elements[1]);
    const OpDef* def = FindOp(c.node->domain(), c.node->op_type());
    if (def && def->matrix_flops) {
      k.flops = def->matrix_flops(*c.node);
      k.matrix = c.inputs[0] >= 0 && IsHalf(exe.slots[c.inputs[0]].dtype);
    } else if (def && def->vector_flops) {
      k.flops = def->vector_flops(*c.node);
      k.library = exe.backend == "cuda" && def->cuda_library && def->cuda_library(*c.node);
      k.matrix = k.library;
    } else {
      k.flops = largest;
    }
    double rate = k.matrix ? device.matrix_flops_per_s : device.vector_flops_per_s;
    k.launches = !def ? 1 : k.library ? def->cuda_library_launches : def->launches;
    k.seconds = std::max(static_cast<double>(k.flops) / rate,
                         static_cast<double>(k.bytes) / device.bytes_per_s) +
                device.launch_s * k.launches;
    cost.launches += k.launches;
    cost.flops += k.flops;
    cost.bytes += k.bytes;
    cost.predicted_s += k.seconds;
    cost.kernels.push_back(k);
  }
  // Each update not written in place is copied over its state after the step.
  for (auto [state, update] : exe.updates) {
    const Slot &s = exe.slots[state], &u = exe.slots[update];
    if (u.kind == SlotKind::kPersistent && u.buffer == s.buffer) continue;
    KernelCost k;
    k.label = "update of '" + s.value->name() + "'";
    k.op = "copy";
    k.bytes = 2 * static_cast<int64_t>(s.nbytes());
    k.seconds = static_cast<double>(k.bytes) / device.bytes_per_s + device.launch_s;
    cost.launches += 1;
    cost.bytes += k.bytes;
    cost.predicted_s += k.seconds;
    cost.kernels.push_back(k);
  }
  // Liveness of arena bytes over the program: a value (or the root it is a
  // view of) is live from its call to its last reader; kept values to the end.
  const size_t n = exe.program.size();
  std::map<int, std::pair<size_t, size_t>> live;  // root slot -> [first, last]
  std::map<int, int> root;                        // slot -> the slot whose bytes it uses
  for (size_t pos = 0; pos < n; ++pos) {
    const Call& c = exe.program[pos];
    for (int i : c.inputs)
      if (i >= 0 && root.count(i)) {
        auto& span = live[root[i]];
        span.second = std::max(span.second, pos);
      }
    for (int i : c.outputs) {
      if (exe.slots[i].kind != SlotKind::kArena) continue;
      // A view is its input's bytes; an output written in place over an
      // input (the plan gave it that input's bytes, and the input dies here)
      // takes over those bytes from this call on.
      int same = -1;
      for (int j : c.inputs)
        if (j >= 0 && root.count(j) && exe.slots[j].kind == SlotKind::kArena &&
            exe.slots[j].offset == exe.slots[i].offset &&
            exe.slots[j].nbytes() == exe.slots[i].nbytes())
          same = j;
      if (IsView(exe, c) && i == c.outputs[0] && root.count(c.inputs[0])) {
        root[i] = root[c.inputs[0]];
      } else if (same >= 0) {
        auto& span = live[root[same]];
        span.second = std::max(span.first, pos - 1);
        root[i] = i;
        live[i] = {pos, pos};
      } else {
        root[i] = i;
        live[i] = {pos, pos};
      }
      if (exe.slots[i].value->is_graph_output()) live[root[i]].second = n;
    }
  }
  std::vector<int64_t> delta(n + 2, 0);
  auto bytes_of = [&](int slot) { return static_cast<int64_t>(exe.slots[slot].nbytes()); };
  for (const auto& [slot, span] : live) {
    delta[span.first] += bytes_of(slot);
    delta[std::min(span.second, n) + 1] -= bytes_of(slot);
  }
  int64_t running = 0;
  size_t peak_pos = 0;
  for (size_t pos = 0; pos < n; ++pos) {
    running += delta[pos];
    if (running > cost.live_peak_bytes) {
      cost.live_peak_bytes = running;
      peak_pos = pos;
    }
  }
  if (n) cost.live_peak_at = exe.program[peak_pos].node;
  for (const auto& [slot, span] : live)
    if (span.first <= peak_pos && peak_pos <= span.second)
      cost.live_at_peak.emplace_back(exe.slots[slot].value, bytes_of(slot));
  std::stable_sort(cost.live_at_peak.begin(), cost.live_at_peak.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::stable_sort(cost.kernels.begin(), cost.kernels.end(),
                   [](const KernelCost& a, const KernelCost& b) { return a.seconds > b.seconds; });
  return cost;
}

nlohmann::json CostToJson(const StepCost& cost, const DeviceModel& device, size_t top) {
  nlohmann::json kernels = nlohmann::json::array();
  for (size_t i = 0; i < cost.kernels.size() && i < top; ++i) {
    const KernelCost& k = cost.kernels[i];
    kernels.push_back({{"node", k.label},
                       {"op", k.op},
                       {"flops", k.flops},
                       {"bytes", k.bytes},
                       {"rate", k.matrix ? "matrix" : "vector"},
                       {"predicted_ms", k.seconds * 1e3}});
  }
  nlohmann::json holders = nlohmann::json::array();
  for (size_t i = 0; i < cost.live_at_peak.size() && i < top; ++i) {
    const Value* v = cost.live_at_peak[i].first;
    holders.push_back({{"value", v->name()},
                       {"bytes", cost.live_at_peak[i].second},
                       {"made_by", v->producer() ? v->producer()->op_type() : ""}});
  }
  std::map<std::string, int64_t> by_op;
  std::map<std::string, double> ms_by_op;
  for (const KernelCost& k : cost.kernels) {
    by_op[k.op] += k.launches;
    ms_by_op[k.op] += k.seconds * 1e3;
  }
  return {{"device_model", device.name},
          {"launches_by_op", by_op},
          {"predicted_ms_by_op", ms_by_op},
          {"live_peak_bytes", cost.live_peak_bytes},
          {"live_peak_at", cost.live_peak_at ? cost.live_peak_at->Describe() : ""},
          {"live_at_peak", holders},
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
  std::snprintf(line, sizeof(line), "arena peak: %.1f MiB live at %s; largest there:\n",
                mib(c["live_peak_bytes"]), c["live_peak_at"].get<std::string>().c_str());
  out += line;
  for (const auto& h : c["live_at_peak"]) {
    std::snprintf(line, sizeof(line), "  %10.1f MiB  %s (%s)\n", mib(h["bytes"]),
                  h["value"].get<std::string>().c_str(), h["made_by"].get<std::string>().c_str());
    out += line;
  }
  out += "most expensive kernels:\n";
  for (const auto& k : c["top_kernels"]) {
    std::snprintf(line, sizeof(line), "  %8.4f ms  %-7s %s\n", k["predicted_ms"].get<double>(),
                  k["rate"].get<std::string>().c_str(), k["node"].get<std::string>().c_str());
    out += line;
  }
  return out;
}

}  // namespace amp
