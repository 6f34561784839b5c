// Shared by the fuzz targets: zip archives carry a CRC-32 per member, which
// random mutation almost never keeps right, so the .npz and checkpoint
// targets also try each input with its CRCs recomputed (a fixed function of
// the input, so every finding reproduces from the saved file alone).
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace amp::fuzz {

// Rewrites the CRC-32 in each central-directory entry to match the member's
// data (stored members, and deflated ones that inflate to at most 16 MiB).
// Plain zip64-less walk, tolerant of anything; true if a CRC changed.
inline bool FixZipCrcs(std::vector<uint8_t>& b) {
  const size_t n = b.size();
  if (n < 22) return false;
  auto le16 = [&](size_t o) -> uint32_t { return b[o] | uint32_t{b[o + 1]} << 8; };
  auto le32 = [&](size_t o) -> uint32_t { return le16(o) | le16(o + 2) << 16; };
  size_t eocd = n;
  size_t lowest = n > 22 + 65535 ? n - 22 - 65535 : 0;
  for (size_t i = n - 22 + 1; i-- > lowest;) {
    if (le32(i) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd == n) return false;
  size_t entries = le16(eocd + 10);
  size_t p = le32(eocd + 16);
  bool changed = false;
  for (size_t e = 0; e < entries; ++e) {
    if (p > n || n - p < 46 || le32(p) != 0x02014b50) break;
    uint32_t method = le16(p + 10);
    size_t csize = le32(p + 20), usize = le32(p + 24), local = le32(p + 42);
    size_t next = p + 46 + le16(p + 28) + le16(p + 30) + le16(p + 32);
    if (local <= n && n - local >= 30) {
      size_t start = local + 30 + le16(local + 26) + le16(local + 28);
      if (start <= n && csize <= n - start) {
        uLong crc = crc32(0, nullptr, 0);
        bool ok = false;
        if (method == 0) {
          crc = crc32(crc, b.data() + start, static_cast<uInt>(csize));
          ok = true;
        } else if (method == 8 && usize <= (size_t{1} << 24)) {
          std::vector<uint8_t> out(usize + 1);
          z_stream z{};
          if (inflateInit2(&z, -MAX_WBITS) == Z_OK) {
            z.next_in = b.data() + start;
            z.avail_in = static_cast<uInt>(csize);
            z.next_out = out.data();
            z.avail_out = static_cast<uInt>(out.size());
            ok = inflate(&z, Z_FINISH) == Z_STREAM_END;
            size_t produced = z.total_out;
            inflateEnd(&z);
            if (ok) crc = crc32(crc, out.data(), static_cast<uInt>(produced));
          }
        }
        if (ok) {
          uint32_t c = static_cast<uint32_t>(crc);
          for (int k = 0; k < 4; ++k) {
            uint8_t byte = static_cast<uint8_t>(c >> (8 * k));
            changed |= b[p + 16 + k] != byte;
            b[p + 16 + k] = byte;
          }
        }
      }
    }
    p = next;
  }
  return changed;
}

}  // namespace amp::fuzz
