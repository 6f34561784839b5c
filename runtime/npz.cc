#include "runtime/npz.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string_view>

namespace amp {
namespace {

uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(Le16(p)) | static_cast<uint32_t>(Le16(p + 2)) << 16;
}
uint64_t Le64(const uint8_t* p) {
  return static_cast<uint64_t>(Le32(p)) | static_cast<uint64_t>(Le32(p + 4)) << 32;
}

std::optional<DType> NpyDType(const std::string& descr) {
  static const std::map<std::string, DType> types = {
      {"|b1", DType::kBool},    {"|i1", DType::kInt8},    {"|u1", DType::kUInt8},
      {"<i2", DType::kInt16},   {"<u2", DType::kUInt16},  {"<i4", DType::kInt32},
      {"<u4", DType::kUInt32},  {"<i8", DType::kInt64},   {"<u8", DType::kUInt64},
      {"<f2", DType::kFloat16}, {"<f4", DType::kFloat32}, {"<f8", DType::kFloat64}};
  auto it = types.find(descr);
  if (it == types.end()) return std::nullopt;
  return it->second;
}

}  // namespace

namespace {

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> dims;
};

// The header is a Python dict literal; numpy reads it with ast.literal_eval
// and requires exactly the keys 'descr', 'fortran_order' and 'shape'. This
// reads that subset of Python strictly: a malformed dict, a missing, unknown or
// repeated key (Python would keep the last), a negative or non-integer dim is
// an error, never a guess.
Status ParseNpyHeader(std::string_view h, const std::string& what, NpyHeader& out) {
  size_t i = 0;
  auto bad = [&](const std::string& why) {
    return InvalidArgument(what, ": malformed .npy header (", why, ")");
  };
  auto skip_space = [&] {
    while (i < h.size() && (h[i] == ' ' || h[i] == '\t' || h[i] == '\n' || h[i] == '\r')) ++i;
  };
  auto eat = [&](char c) {
    skip_space();
    if (i < h.size() && h[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  auto quoted = [&](std::string& s) {
    skip_space();
    if (i >= h.size() || (h[i] != '\'' && h[i] != '"')) return false;
    char q = h[i++];
    size_t begin = i;
    while (i < h.size() && h[i] != q && h[i] != '\\') ++i;
    if (i >= h.size() || h[i] != q) return false;  // unterminated, or an escape
    s = std::string(h.substr(begin, i - begin));
    ++i;
    return true;
  };
  auto word = [&](std::string_view w) {
    skip_space();
    if (h.substr(i, w.size()) != w) return false;
    i += w.size();
    return true;
  };
  if (!eat('{')) return bad("it does not start with '{'");
  bool seen_descr = false, seen_order = false, seen_shape = false;
  while (!eat('}')) {
    if (i >= h.size()) return bad("no closing '}'");
    std::string key;
    if (!quoted(key)) return bad("expected a quoted key");
    if (!eat(':')) return bad("no ':' after '" + key + "'");
    bool* seen = key == "descr"           ? &seen_descr
                 : key == "fortran_order" ? &seen_order
                 : key == "shape"         ? &seen_shape
                                          : nullptr;
    if (!seen) return bad("unexpected key '" + key + "'");
    if (*seen) return bad("key '" + key + "' appears twice");
    *seen = true;
    if (key == "descr") {
      if (!quoted(out.descr))
        return Unimplemented(what,
                             ": only simple element types are supported (a structured "
                             "dtype or a malformed 'descr')");
    } else if (key == "fortran_order") {
      if (word("True")) {
        out.fortran_order = true;
      } else if (!word("False")) {
        return bad("'fortran_order' is not True or False");
      }
    } else {
      if (!eat('(')) return bad("'shape' is not a tuple");
      bool comma = false;
      while (!eat(')')) {
        if (!out.dims.empty() && !comma) return bad("expected ',' or ')' in 'shape'");
        if (i < h.size() && h[i] == '-') return InvalidArgument(what, ": negative dim in 'shape'");
        if (i >= h.size() || h[i] < '0' || h[i] > '9') return bad("a dim is not an integer");
        int64_t d = 0;
        for (; i < h.size() && h[i] >= '0' && h[i] <= '9'; ++i) {
          d = d * 10 + (h[i] - '0');
          if (d > kMaxDim) return InvalidArgument(what, ": a dim in 'shape' is too large");
        }
        out.dims.push_back(d);
        comma = eat(',');
      }
      // Python's (2) is the number 2, not a tuple: numpy writes (2,).
      if (out.dims.size() == 1 && !comma) return bad("'shape' is not a tuple");
    }
    if (!eat(',')) {
      if (!eat('}')) return bad("expected ',' or '}' after '" + key + "'");
      break;
    }
  }
  skip_space();
  if (i != h.size()) return bad("text after the closing '}'");
  if (!seen_descr || !seen_order || !seen_shape)
    return bad(StrCat("no '",
                      !seen_descr   ? "descr"
                      : !seen_order ? "fortran_order"
                                    : "shape",
                      "'"));
  return Status::Ok();
}

}  // namespace

StatusOr<Tensor> ParseNpy(const uint8_t* data, size_t size, const std::string& what) {
  static const char kMagic[] = "\x93NUMPY";
  if (size < 10 || std::memcmp(data, kMagic, 6) != 0)
    return InvalidArgument(what, " is not a .npy array");
  uint8_t major = data[6];
  size_t header_len, offset;
  if (major == 1) {
    header_len = Le16(data + 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) return InvalidArgument(what, ": truncated .npy header");
    header_len = Le32(data + 8);
    offset = 12;
  } else {
    return Unimplemented(what, ": .npy format version ", int{major}, " is not supported");
  }
  if (header_len > size - offset) return InvalidArgument(what, ": truncated .npy header");
  NpyHeader header;
  AMP_RETURN_IF_ERROR(ParseNpyHeader(
      std::string_view(reinterpret_cast<const char*>(data + offset), header_len), what, header));
  if (header.fortran_order)
    return Unimplemented(
        what, ": Fortran-order arrays are not supported (save with np.ascontiguousarray)");
  auto dtype = NpyDType(header.descr);
  if (!dtype)
    return Unimplemented(what, ": element type '", header.descr,
                         "' is not supported (use little-endian numbers or bool)");
  int64_t n = 1;
  for (int64_t d : header.dims) {
    if (d != 0 && n > kMaxDim / d) return InvalidArgument(what, ": the array is too large");
    n *= d;
  }
  size_t nbytes = static_cast<size_t>(n) * DTypeSize(*dtype);
  size_t begin = offset + header_len;
  if (nbytes > size - begin)
    return InvalidArgument(what, " holds ", size - begin, " bytes of data but its shape needs ",
                           nbytes);
  Tensor t(*dtype, header.dims);
  if (nbytes) std::memcpy(t.mutable_data(), data + begin, nbytes);
  if (*dtype == DType::kBool) {  // numpy reads any nonzero byte as True
    uint8_t* b = t.mutable_data();
    for (size_t k = 0; k < nbytes; ++k) b[k] = b[k] != 0;
  }
  return t;
}

StatusOr<std::map<std::string, Tensor>> ReadNpzBytes(const uint8_t* base, size_t size,
                                                     const std::string& what) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument(what, " is not a valid .npz archive: ", why);
  };
  // End of central directory: within the last 64 KiB + 22 bytes.
  if (size < 22) return bad("too short");
  size_t eocd = std::string::npos;
  size_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (size_t i = size - 22 + 1; i-- > lowest;) {
    if (Le32(base + i) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) return bad("no end-of-central-directory record");
  uint64_t entries = Le16(base + eocd + 10);
  uint64_t cd_size = Le32(base + eocd + 12);
  uint64_t cd_offset = Le32(base + eocd + 16);
  size_t cd_limit = eocd;  // the central directory ends where its end record begins
  if (cd_offset == 0xffffffff || entries == 0xffff) {  // zip64: locator just before the EOCD
    if (eocd < 20 || Le32(base + eocd - 20) != 0x07064b50) return bad("zip64 locator missing");
    uint64_t rec = Le64(base + eocd - 20 + 8);
    // The zip64 end record (56 bytes) ends before its locator.
    if (eocd - 20 < 56 || rec > eocd - 20 - 56 || Le32(base + rec) != 0x06064b50)
      return bad("zip64 record missing");
    entries = Le64(base + rec + 32);
    cd_size = Le64(base + rec + 40);
    cd_offset = Le64(base + rec + 48);
    cd_limit = rec;
  }
  if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset)
    return bad("central directory out of bounds");
  // Every read below stays inside what the archive declares: an entry inside
  // the central directory, a member's header and data before it.
  const size_t cd_end = cd_offset + cd_size;
  std::map<std::string, Tensor> out;
  size_t p = cd_offset;
  for (uint64_t e = 0; e < entries; ++e) {
    if (cd_end - p < 46 || Le32(base + p) != 0x02014b50) return bad("corrupt central directory");
    uint16_t method = Le16(base + p + 10);
    uint32_t crc = Le32(base + p + 16);
    uint64_t csize = Le32(base + p + 20), usize = Le32(base + p + 24);
    uint16_t name_len = Le16(base + p + 28), extra_len = Le16(base + p + 30),
             comment_len = Le16(base + p + 32);
    uint64_t local = Le32(base + p + 42);
    size_t entry_len = size_t{46} + name_len + extra_len + comment_len;
    if (cd_end - p < entry_len) return bad("corrupt central directory");
    std::string name(reinterpret_cast<const char*>(base + p + 46), name_len);
    // zip64 extra field: the saturated fields, in order usize, csize, offset.
    const size_t extra_end = p + 46 + name_len + extra_len;
    for (size_t x = p + 46 + name_len; extra_end - x >= 4;) {
      uint16_t id = Le16(base + x), len = Le16(base + x + 2);
      size_t f = x + 4;
      if (extra_end - f < len) return bad("corrupt extra field");
      size_t end = f + len;
      if (id == 0x0001) {
        if (usize == 0xffffffff && end - f >= 8) usize = Le64(base + f), f += 8;
        if (csize == 0xffffffff && end - f >= 8) csize = Le64(base + f), f += 8;
        if (local == 0xffffffff && end - f >= 8) local = Le64(base + f), f += 8;
      }
      x = end;
    }
    p += entry_len;
    if (local > cd_offset || cd_offset - local < 30 || Le32(base + local) != 0x04034b50)
      return bad("corrupt local header of '" + name + "'");
    uint64_t local_name_len = Le16(base + local + 26);
    uint64_t start = local + 30 + local_name_len + Le16(base + local + 28);
    if (start > cd_offset || csize > cd_offset - start)
      return bad("'" + name + "' extends past the end of its data");
    if (local_name_len != name_len || std::memcmp(base + local + 30, name.data(), name_len) != 0)
      return bad("the local header of '" + name + "' names another file");
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0) continue;
    std::string key = name.substr(0, name.size() - 4);
    // numpy would take the last of two members with one name: refuse to guess.
    if (out.count(key)) return bad("two members are named '" + name + "'");
    std::string member = what + " member '" + name + "'";
    // Every member's CRC-32 is checked: a flipped bit is an error, not data.
    auto crc_ok = [crc](const uint8_t* data, uint64_t n) {
      uLong c = crc32(0, nullptr, 0);
      for (uint64_t off = 0; off < n;) {
        uInt chunk = static_cast<uInt>(std::min<uint64_t>(n - off, 1u << 30));
        c = crc32(c, data + off, chunk);
        off += chunk;
      }
      return static_cast<uint32_t>(c) == crc;
    };
    if (method == 0) {
      if (csize != usize) return bad("stored member '" + name + "' has inconsistent sizes");
      if (!crc_ok(base + start, csize)) return bad("member '" + name + "' fails its CRC check");
      AMP_ASSIGN_OR_RETURN(Tensor t, ParseNpy(base + start, csize, member));
      out.emplace(key, std::move(t));
    } else if (method == 8) {
      // Inflate into a buffer that grows with the output, up to one byte past
      // the declared size: a member that claims more than it holds costs
      // nothing, and one that inflates to more than it claims is an error.
      if (usize > (uint64_t{1} << 36)) return bad("member '" + name + "' is too large");
      std::vector<uint8_t> buf;
      const uint64_t limit = usize + 1;
      z_stream z{};
      if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return Internal("zlib init failed");
      const uint8_t* in = base + start;
      uint64_t in_left = csize;
      uint64_t have = 0;
      int rc = Z_OK;
      while (rc == Z_OK) {
        if (have == buf.size()) {
          if (buf.size() == limit) break;
          buf.resize(std::min<uint64_t>(limit, std::max<uint64_t>(2 * buf.size(), 1 << 16)));
        }
        if (z.avail_in == 0) {
          if (in_left == 0) break;
          z.next_in = const_cast<uint8_t*>(in);
          z.avail_in = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
          in += z.avail_in;
          in_left -= z.avail_in;
        }
        uInt room = static_cast<uInt>(std::min<uint64_t>(buf.size() - have, 1u << 30));
        z.next_out = buf.data() + have;
        z.avail_out = room;
        rc = inflate(&z, Z_NO_FLUSH);
        have += room - z.avail_out;
      }
      inflateEnd(&z);
      if (rc != Z_STREAM_END || have != usize)
        return bad("member '" + name + "' does not inflate to its declared size");
      if (!crc_ok(buf.data(), usize)) return bad("member '" + name + "' fails its CRC check");
      AMP_ASSIGN_OR_RETURN(Tensor t, ParseNpy(buf.data(), usize, member));
      out.emplace(key, std::move(t));
    } else {
      return Unimplemented(member, ": compression method ", method, " is not supported");
    }
  }
  return out;
}

StatusOr<std::map<std::string, Tensor>> ReadNpz(const std::string& path) {
  AMP_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  return ReadNpzBytes(file->data(), file->size(), "'" + path + "'");
}

namespace {

std::string NpyDescr(DType t) {
  switch (t) {
    case DType::kBool:
      return "|b1";
    case DType::kInt8:
      return "|i1";
    case DType::kUInt8:
      return "|u1";
    case DType::kInt16:
      return "<i2";
    case DType::kUInt16:
      return "<u2";
    case DType::kBFloat16:
      return "<u2";
    case DType::kInt32:
      return "<i4";
    case DType::kUInt32:
      return "<u4";
    case DType::kInt64:
      return "<i8";
    case DType::kUInt64:
      return "<u8";
    case DType::kFloat16:
      return "<f2";
    case DType::kFloat32:
      return "<f4";
    case DType::kFloat64:
      return "<f8";
    default:
      return "";
  }
}

void Put16(std::string& s, uint32_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>((v >> 8) & 0xff));
}
void Put32(std::string& s, uint32_t v) {
  Put16(s, v & 0xffff);
  Put16(s, v >> 16);
}

// Writes all of `data` to fd; false on any error (a full disk included).
bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

Status WriteNpz(const std::string& path, const std::map<std::string, Tensor>& arrays) {
  std::string out;
  std::string central;
  uint32_t count = 0;
  for (const auto& [name, t] : arrays) {
    std::string descr = NpyDescr(t.dtype());
    if (descr.empty()) return Unimplemented("cannot write '", name, "': unsupported element type");
    std::string shape = "(";
    for (size_t i = 0; i < t.dims().size(); ++i)
      shape.append(i ? ", " : "").append(std::to_string(t.dims()[i]));
    shape += t.dims().size() == 1 ? ",)" : ")";
    std::string header =
        "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    std::string npy = "\x93NUMPY";
    npy.push_back(1);
    npy.push_back(0);
    Put16(npy, static_cast<uint32_t>(header.size()));
    npy += header;
    npy.append(reinterpret_cast<const char*>(t.data()), t.nbytes());
    if (out.size() + npy.size() > 0xffffffffull)
      return Unimplemented("'", path, "' would exceed 4 GiB (zip64 writing is not supported)");
    std::string member = name + ".npy";
    uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(npy.data()), static_cast<uInt>(npy.size())));
    uint32_t offset = static_cast<uint32_t>(out.size());
    uint32_t size = static_cast<uint32_t>(npy.size());
    // Local file header.
    Put32(out, 0x04034b50);
    Put16(out, 20);
    Put16(out, 0);
    Put16(out, 0);  // stored
    Put16(out, 0);
    Put16(out, 0x21);  // 1980-01-01
    Put32(out, crc);
    Put32(out, size);
    Put32(out, size);
    Put16(out, static_cast<uint32_t>(member.size()));
    Put16(out, 0);
    out += member;
    out += npy;
    // Central directory entry.
    Put32(central, 0x02014b50);
    Put16(central, 20);
    Put16(central, 20);
    Put16(central, 0);
    Put16(central, 0);
    Put16(central, 0);
    Put16(central, 0x21);
    Put32(central, crc);
    Put32(central, size);
    Put32(central, size);
    Put16(central, static_cast<uint32_t>(member.size()));
    Put16(central, 0);
    Put16(central, 0);
    Put16(central, 0);
    Put16(central, 0);
    Put32(central, 0);
    Put32(central, offset);
    central += member;
    ++count;
  }
  uint32_t cd_offset = static_cast<uint32_t>(out.size());
  out += central;
  Put32(out, 0x06054b50);
  Put16(out, 0);
  Put16(out, 0);
  Put16(out, count);
  Put16(out, count);
  Put32(out, static_cast<uint32_t>(central.size()));
  Put32(out, cd_offset);
  Put16(out, 0);

  // A device or a FIFO (/dev/null) is written as it is: renaming a file
  // over it would replace the device.
  std::error_code ec;
  std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::exists(st) && !std::filesystem::is_regular_file(st) &&
      !std::filesystem::is_directory(st)) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return IoError("cannot write '", path, "': ", std::strerror(errno));
    bool ok = WriteAll(fd, out.data(), out.size());
    int err = errno;
    ok = (::close(fd) == 0) && ok;
    if (!ok) return IoError("cannot write '", path, "': ", std::strerror(err));
    return Status::Ok();
  }
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot write '", tmp, "': ", std::strerror(errno));
  bool ok = WriteAll(fd, out.data(), out.size()) && ::fsync(fd) == 0;
  int err = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    return IoError("cannot write '", tmp, "': ", std::strerror(err),
                   " (the previous file, if any, is intact)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    return IoError("cannot rename '", tmp, "' to '", path, "': ", std::strerror(e));
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace amp
