// The .npy and .npz readers (runtime/npz.h) on arbitrary bytes: each input is
// read as one .npy array, as an .npz archive, and as that archive with its
// CRCs made right (so that mutations reach the members' .npy headers).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/npz.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)amp::ParseNpy(data, size, "input");
  (void)amp::ReadNpzBytes(data, size);
  std::vector<uint8_t> fixed(data, data + size);
  if (amp::fuzz::FixZipCrcs(fixed)) (void)amp::ReadNpzBytes(fixed.data(), fixed.size());
  return 0;
}
