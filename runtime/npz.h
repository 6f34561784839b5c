// Reading NumPy .npz archives (np.savez and np.savez_compressed): the
// training data amp-train reads, one array per graph input. Little-endian,
// C-order arrays of bool, int8..int64, uint8..uint64, float16, float32 and
// float64. Anything else, and every malformed archive, is an error Status.
#pragma once

#include <map>
#include <string>

#include "compiler/status.h"
#include "compiler/tensor.h"

namespace amp {

// Arrays by name (the member name without ".npy", e.g. "x0" or "init/fc.weight").
StatusOr<std::map<std::string, Tensor>> ReadNpz(const std::string& path);
// The same for an archive held in memory; `what` names it in errors. Every
// read stays inside the sizes the archive declares.
StatusOr<std::map<std::string, Tensor>> ReadNpzBytes(const uint8_t* data, size_t size,
                                                     const std::string& what = "the archive");
// Writes arrays as an uncompressed .npz (what np.savez writes), atomically:
// to "<path>.tmp", fsync, rename over `path`, fsync the folder. A crash or a
// full disk midway leaves any earlier file at `path` intact. bfloat16 arrays
// are written as uint16 (NumPy has no bfloat16).
Status WriteNpz(const std::string& path, const std::map<std::string, Tensor>& arrays);
// One .npy file's bytes. The header must be the dict np.save writes ('descr',
// 'fortran_order', 'shape', each once); dims are non-negative integers.
StatusOr<Tensor> ParseNpy(const uint8_t* data, size_t size, const std::string& what);

}  // namespace amp
