#include "runtime/checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "runtime/npz.h"

namespace amp {
namespace {

constexpr const char* kStepKey = "__amp__.step";
constexpr const char* kMetaKey = "__amp__.meta";

}  // namespace

std::string CheckpointPath(const std::string& dir) {
  return (std::filesystem::path(dir) / "checkpoint.npz").string();
}

Status SaveCheckpoint(const Executor& session, const std::string& dir, const nlohmann::json& meta) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return IoError("cannot create the checkpoint folder '", dir, "': ", ec.message());
  std::map<std::string, Tensor> arrays;
  for (const std::string& name : session.StateNames()) {
    AMP_ASSIGN_OR_RETURN(Tensor t, session.Fetch(name));
    arrays[name] = std::move(t);
  }
  arrays[kStepKey] = Tensor::FromVector<int64_t>(DType::kInt64, {}, {session.step()});
  std::string text = meta.dump();
  std::vector<uint8_t> bytes(text.begin(), text.end());
  arrays[kMetaKey] =
      Tensor::FromVector<uint8_t>(DType::kUInt8, {static_cast<int64_t>(bytes.size())}, bytes);
  return WriteNpz(CheckpointPath(dir), arrays);
}

namespace {

std::string DimsOf(const Tensor& t) { return ShapeToString(ShapeFromDims(t.dims())); }

// A scalar state whose value must be a count (an optimizer's step, the loss
// scaler's growth tracker): finite, whole, 0 to kMaxStep.
bool IsCount(double v) { return std::isfinite(v) && v >= 0 && v <= kMaxStep && v == std::floor(v); }

}  // namespace

StatusOr<nlohmann::json> LoadCheckpoint(Executor& session, const std::string& dir) {
  std::string path = CheckpointPath(dir);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return NotFound("no checkpoint at '", path, "'");
  AMP_ASSIGN_OR_RETURN(auto arrays, ReadNpz(path));
  auto bad = [&](const auto&... what) {
    return InvalidArgument("checkpoint '", path, "': ", what...);
  };
  auto step = arrays.find(kStepKey);
  auto meta = arrays.find(kMetaKey);
  if (step == arrays.end() || meta == arrays.end())
    return bad("not an amp checkpoint (no ", kStepKey, " or ", kMetaKey, ")");
  if (step->second.dtype() != DType::kInt64 || step->second.num_elements() != 1)
    return bad(kStepKey, " must be one int64, not ", DTypeName(step->second.dtype()),
               DimsOf(step->second));
  if (meta->second.dtype() != DType::kUInt8 || meta->second.dims().size() != 1)
    return bad(kMetaKey, " must be a 1-D uint8 array (JSON text)");
  int64_t at = step->second.GetInt(0);
  if (at < 0 || at > kMaxStep) return bad(kStepKey, " is ", at, "; it must be 0 to 2^53");
  const uint8_t* p = meta->second.data();
  std::string text(p, p + meta->second.nbytes());
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad(kMetaKey, " is not a JSON object");

  // Everything is checked before anything is set: a refused checkpoint
  // leaves the session as it was.
  std::map<std::string, Tensor> values;
  for (const std::string& name : session.StateNames()) {
    auto it = arrays.find(name);
    if (it == arrays.end())
      return bad("it has no value for '", name, "'; it was saved from another model");
    Tensor t = it->second;
    AMP_ASSIGN_OR_RETURN(Tensor current, session.Initializer(name));
    if (current.dtype() == DType::kBFloat16 && t.dtype() == DType::kUInt16 &&
        t.nbytes() == current.nbytes()) {  // bfloat16 is stored as uint16
      Tensor b(DType::kBFloat16, t.dims());
      std::memcpy(b.mutable_data(), t.data(), t.nbytes());
      t = b;
    }
    if (t.dtype() != current.dtype() || t.dims() != current.dims())
      return bad("'", name, "' is ", DTypeName(t.dtype()), DimsOf(t), " but this step holds it as ",
                 DTypeName(current.dtype()), DimsOf(current));
    if (int64_t i = t.FirstNonFinite(); i >= 0)
      return bad("'", name, "' holds ", t.GetDouble(i), " at element ", i,
                 "; a checkpoint's state must be finite");
    values[name] = std::move(t);
  }
  for (const auto& [name, t] : arrays)
    if (name != kStepKey && name != kMetaKey && !values.count(name))
      return bad("it holds '", name, "', which this step has no state for; it was saved from ",
                 "another model");
  // The state whose meaning the step records (Model::training).
  const TrainingInfo& roles = session.model().training;
  if (auto it = values.find(roles.loss_scale); it != values.end()) {
    double s = it->second.GetDouble(0);
    if (!(s > 0) || !std::isfinite(s) || it->second.num_elements() != 1)
      return bad("'", it->first, "' is ", s, "; a loss scale must be finite and positive");
  }
  for (const std::string* count : {&roles.growth_tracker, &roles.optimizer_step}) {
    auto it = values.find(*count);
    if (it == values.end()) continue;
    double v = it->second.num_elements() == 1 ? it->second.GetDouble(0) : -1;
    if (!IsCount(v)) return bad("'", *count, "' is ", v, "; it must be a whole number from 0");
  }
  if (auto it = values.find(roles.optimizer_step);
      it != values.end() && it->second.GetDouble(0) > at)
    return bad("'", it->first, "' is ", it->second.GetDouble(0), " but the checkpoint is at step ",
               at, " (an optimizer cannot have taken more steps than the session)");
  for (const auto& [name, t] : values) {
    bool second_moment = name.size() > 11 && name.compare(name.size() - 11, 11, ".exp_avg_sq") == 0;
    if (!second_moment) continue;
    for (int64_t i = 0; i < t.num_elements(); ++i)
      if (t.GetDouble(i) < 0)
        return bad("'", name, "' holds ", t.GetDouble(i), " at element ", i,
                   "; a second moment cannot be negative");
  }
  for (const auto& [name, t] : values) {
    Status st = session.SetInitializer(name, t);
    if (!st.ok()) return st.WithContext(StrCat("checkpoint '", path, "'"));
  }
  session.set_step(at);
  return j;
}

}  // namespace amp
