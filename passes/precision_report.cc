#include "passes/precision_report.h"

#include <cstdio>
#include <map>

namespace amp {
namespace {

bool IsAmpNode(const Node& n) { return n.origin() != NodeOrigin::kModel; }

// Element count with symbolic or unknown dims counted as 1.
int64_t Elements(const TensorType& t, bool* symbolic) {
  if (!t.shape) {
    *symbolic = true;
    return 1;
  }
  int64_t n = 1;
  for (const Dim& d : *t.shape) {
    if (d.is_static())
      n *= d.value();
    else
      *symbolic = true;
  }
  return n;
}

std::string HumanBytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

}  // namespace

int CountCasts(const Model& model) {
  int n = 0;
  for (const Node* node : model.graph->nodes()) n += node->op_type() == "Cast";
  return n;
}

nlohmann::json BuildPrecisionReport(const Model& m, const ReportContext& ctx) {
  using json = nlohmann::json;
  std::map<std::string, std::map<std::string, int>> per_op;
  json nodes = json::array();
  int half = 0, fp32 = 0, untouched = 0, inserted = 0, converted = 0, user_casts = 0;
  bool symbolic = false;
  int64_t bytes_fp32 = 0, bytes_mixed = 0;
  for (const Node* n : m.graph->nodes()) {
    if (n->origin() == NodeOrigin::kInsertedCast)
      ++inserted;
    else if (n->origin() == NodeOrigin::kConvertedConstant)
      ++converted;
    else if (n->op_type() == "Cast")
      ++user_casts;
    for (const Value* out : n->outputs()) {
      if (n->op_type() == "Constant") continue;
      int64_t e = Elements(out->type(), &symbolic);
      size_t size = DTypeSize(out->dtype());
      bytes_mixed += e * static_cast<int64_t>(size);
      if (!IsAmpNode(*n)) bytes_fp32 += e * static_cast<int64_t>(IsFloat(out->dtype()) ? 4 : size);
    }
    if (IsAmpNode(*n)) continue;
    std::string p = n->precision().name();
    std::string bucket = p.empty() ? "untouched" : (p == "fp32" ? "fp32" : "half");
    ++per_op[n->op_type()][bucket];
    (bucket == "half" ? half : bucket == "fp32" ? fp32 : untouched)++;
    nodes.push_back({{"name", n->name()},
                     {"op", n->op_type()},
                     {"output", n->num_outputs() ? n->output(0)->name() : ""},
                     {"precision", p.empty() ? "untouched" : p},
                     {"rule", p.empty() ? "not painted (integer, shape or type-agnostic)"
                                        : n->precision().rule}});
  }
  json ops = json::array();
  for (const auto& [op, op_counts] : per_op) {
    const auto& counts = op_counts;  // clang 14 cannot capture a structured binding
    auto get = [&](const char* k) {
      auto it = counts.find(k);
      return it == counts.end() ? 0 : it->second;
    };
    ops.push_back({{"op", op},
                   {"half", get("half")},
                   {"fp32", get("fp32")},
                   {"untouched", get("untouched")}});
  }
  nlohmann::json report = {
      {"dtype", ctx.dtype},
      {"opt_level", ctx.opt_level},
      {"summary",
       {{"nodes", half + fp32 + untouched},
        {"half", half},
        {"fp32", fp32},
        {"untouched", untouched},
        {"casts_inserted", inserted},
        {"constants_converted", converted},
        {"user_casts_before", ctx.casts_before},
        {"user_casts_removed", ctx.casts_before - user_casts}}},
      {"activation_bytes",
       {{"fp32", bytes_fp32}, {"mixed", bytes_mixed}, {"symbolic_dims_counted_as_1", symbolic}}},
      {"ops", ops},
      {"nodes", nodes}};
  // The training step, from its typed description.
  const TrainingInfo& t = m.training;
  if (t.active()) {
    int64_t master_bytes = 0, half_bytes = 0;
    for (const std::string& p : t.trainable)
      if (const Value* v = m.graph->FindValue(p); v && v->has_initializer())
        master_bytes += static_cast<int64_t>(v->initializer()->nbytes());
    for (const auto& [p, copy] : t.half_copies)
      if (const Value* v = m.graph->FindValue(p); v && v->has_initializer())
        half_bytes += static_cast<int64_t>(v->initializer()->nbytes()) / 2;
    report["training"] = {{"parameters", t.trainable.size()},
                          {"trainable", t.trainable},
                          {"fp32_master_bytes", master_bytes},
                          {"half_copies", t.half_copies.size()},
                          {"half_copy_bytes", half_bytes},
                          {"optimizer", OptimizerKindName(t.optimizer.kind)},
                          {"loss_scaling", t.unscaled.empty()         ? "none"
                                           : t.growth_tracker.empty() ? "static"
                                                                      : "dynamic"}};
  }
  return report;
}

std::string FormatPrecisionReport(const nlohmann::json& r) {
  std::string out;
  char line[256];
  const auto& s = r["summary"];
  std::snprintf(line, sizeof(line), "precision report (%s, %s)\n",
                r["opt_level"].get<std::string>().c_str(), r["dtype"].get<std::string>().c_str());
  out += line;
  std::snprintf(line, sizeof(line), "  %-28s %6s %6s %9s\n", "op", "half", "fp32", "untouched");
  out += line;
  for (const auto& op : r["ops"]) {
    std::snprintf(line, sizeof(line), "  %-28s %6d %6d %9d\n", op["op"].get<std::string>().c_str(),
                  op["half"].get<int>(), op["fp32"].get<int>(), op["untouched"].get<int>());
    out += line;
  }
  std::snprintf(line, sizeof(line), "  %-28s %6d %6d %9d\n", "total", s["half"].get<int>(),
                s["fp32"].get<int>(), s["untouched"].get<int>());
  out += line;
  std::snprintf(
      line, sizeof(line),
      "casts: %d inserted at precision boundaries, %d constants converted at compile time, "
      "%d of the model's own %d casts removed\n",
      s["casts_inserted"].get<int>(), s["constants_converted"].get<int>(),
      s["user_casts_removed"].get<int>(), s["user_casts_before"].get<int>());
  out += line;
  const auto& a = r["activation_bytes"];
  double f = a["fp32"].get<double>(), mixed = a["mixed"].get<double>();
  std::snprintf(line, sizeof(line), "activations: %s in FP32, %s mixed (%.0f%%)%s\n",
                HumanBytes(f).c_str(), HumanBytes(mixed).c_str(), f > 0 ? 100.0 * mixed / f : 100.0,
                a["symbolic_dims_counted_as_1"].get<bool>()
                    ? "; symbolic dims counted as 1, use --bind-dim for totals"
                    : "");
  out += line;
  if (r.contains("training")) {
    const auto& t = r["training"];
    out += StrCat("training step: ", t["parameters"].get<int>(), " parameters (",
                  HumanBytes(t["fp32_master_bytes"].get<double>()), " of FP32 masters), ",
                  t["half_copies"].get<int>(), " cast to half each step (",
                  HumanBytes(t["half_copy_bytes"].get<double>()), "); optimizer ",
                  t["optimizer"].get<std::string>(), "; loss scaling ",
                  t["loss_scaling"].get<std::string>(), "\n");
  }
  if (s["half"].get<int>() == 0) {
    out += r["opt_level"] == "O0"
               ? "amp converted nothing to half: --opt-level O0 keeps every op in FP32\n"
               : "amp converted nothing to half: no node is in the half list (MatMul, Gemm, Conv, "
                 "...) or "
                 "every such node was kept in FP32 by an override; see the rules below\n";
  }
  out += StrCat("painted nodes (", s["untouched"].get<int>(),
                " untouched nodes, constants and shape computations, are in --report-json):\n");
  for (const auto& n : r["nodes"]) {
    if (n["precision"] == "untouched") continue;
    std::string name = n["name"].get<std::string>();
    if (name.empty()) name = "-> " + n["output"].get<std::string>();
    std::snprintf(line, sizeof(line), "  %-9s %-20s %-40s %s\n",
                  n["precision"].get<std::string>().c_str(), n["op"].get<std::string>().c_str(),
                  name.c_str(), n["rule"].get<std::string>().c_str());
    out += line;
  }
  return out;
}

std::string PrecisionDot(const Model& m) {
  std::string out =
      "digraph amp {\n  rankdir=TB;\n  node [shape=box, style=filled, fontname=Helvetica];\n";
  std::map<const Node*, int> id;
  for (const Node* n : m.graph->nodes()) id[n] = static_cast<int>(id.size());
  auto quote = [](std::string s) {
    std::string q;
    for (char c : s) q += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    return "\"" + q + "\"";
  };
  for (const Node* n : m.graph->nodes()) {
    std::string p = n->precision().name();
    const char* color = IsAmpNode(*n) ? "#ffe08a"
                        : p == "fp32" ? "#f4a6a6"
                        : p.empty()   ? "#dddddd"
                                      : "#a6e3a6";
    std::string label =
        n->op_type() + "\\n" + (n->num_outputs() ? n->output(0)->type().ToString() : "");
    out += StrCat("  n", id[n], " [label=", quote(label), ", fillcolor=\"", color, "\"];\n");
  }
  for (const Node* n : m.graph->nodes())
    for (const Value* in : n->inputs())
      if (in && in->producer()) out += StrCat("  n", id[in->producer()], " -> n", id[n], ";\n");
  return out + "}\n";
}

}  // namespace amp
