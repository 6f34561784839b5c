#include "runtime/checkpoint.h"

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

Status SaveCheckpoint(const Session& session, const std::string& dir, const nlohmann::json& meta) {
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

StatusOr<nlohmann::json> LoadCheckpoint(Session& session, const std::string& dir) {
  std::string path = CheckpointPath(dir);
  if (!std::filesystem::exists(path)) return NotFound("no checkpoint at '", path, "'");
  AMP_ASSIGN_OR_RETURN(auto arrays, ReadNpz(path));
  auto step = arrays.find(kStepKey);
  auto meta = arrays.find(kMetaKey);
  if (step == arrays.end() || meta == arrays.end() || step->second.dtype() != DType::kInt64 ||
      step->second.num_elements() != 1 || meta->second.dtype() != DType::kUInt8)
    return InvalidArgument("'", path, "' is not an amp checkpoint (no step or metadata)");
  for (const std::string& name : session.StateNames()) {
    auto it = arrays.find(name);
    if (it == arrays.end())
      return InvalidArgument("'", path, "' has no value for '", name,
                             "'; it was saved from another model");
    Tensor t = it->second;
    AMP_ASSIGN_OR_RETURN(Tensor current, session.Initializer(name));
    if (current.dtype() == DType::kBFloat16 && t.dtype() == DType::kUInt16 &&
        t.nbytes() == current.nbytes()) {  // bfloat16 is stored as uint16
      Tensor b(DType::kBFloat16, t.dims());
      std::memcpy(b.mutable_data(), t.data(), t.nbytes());
      t = b;
    }
    Status st = session.SetInitializer(name, t);
    if (!st.ok()) return st.WithContext(StrCat("checkpoint '", path, "'"));
  }
  session.set_step(step->second.GetInt(0));
  const uint8_t* p = meta->second.data();
  std::string text(p, p + meta->second.nbytes());
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return InvalidArgument("'", path, "' has corrupt metadata");
  return j;
}

}  // namespace amp
