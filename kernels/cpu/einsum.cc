// Einsum: any equation (explicit or implicit output, repeated letters for
// diagonals, "..." broadcast dims), as a direct sum over every letter
// combination, in double. A reference, not a fast path: graphs whose Einsum
// is a GEMM should be rewritten to MatMul.
#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "kernels/cpu/families.h"

namespace amp::cpu {
namespace {

Status EinsumKernel(KernelContext& ctx) {
  std::string eq;
  for (char ch : ctx.node.GetString("equation", ""))
    if (ch != ' ') eq += ch;
  size_t arrow = eq.find("->");
  std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(
        lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != ctx.inputs.size())
    return ctx.Error("equation '", eq, "' does not match the inputs");
  // "..." becomes upper-case letters, aligned from the right across inputs.
  int64_t ell_rank = 0;
  for (size_t k = 0; k < terms.size(); ++k) {
    size_t p = terms[k].find("...");
    if (p == std::string::npos) continue;
    int64_t explicit_letters = static_cast<int64_t>(terms[k].size()) - 3;
    ell_rank = std::max(ell_rank, ctx.in(k).rank() - explicit_letters);
  }
  auto expand = [&](const std::string& t, int64_t rank) {
    size_t p = t.find("...");
    if (p == std::string::npos) return t;
    std::string ell;
    for (int64_t i = ell_rank - rank; i < ell_rank; ++i) ell += static_cast<char>('A' + i);
    return t.substr(0, p) + ell + t.substr(p + 3);
  };
  std::map<char, int64_t> size;
  std::map<char, int> count;
  for (size_t k = 0; k < terms.size(); ++k) {
    int64_t explicit_letters =
        static_cast<int64_t>(terms[k].size()) - (terms[k].find("...") != std::string::npos ? 3 : 0);
    terms[k] = expand(terms[k], ctx.in(k).rank() - explicit_letters);
    if (static_cast<int64_t>(terms[k].size()) != ctx.in(k).rank())
      return ctx.Error("term '", terms[k], "' does not match input rank ", ctx.in(k).rank());
    for (size_t i = 0; i < terms[k].size(); ++i) {
      char ch = terms[k][i];
      int64_t d = ctx.in(k).dims[i];
      if (size.count(ch) && size[ch] != d && size[ch] != 1 && d != 1)
        return ctx.Error("letter '", ch, "' has sizes ", size[ch], " and ", d);
      size[ch] = std::max(size.count(ch) ? size[ch] : 1, d);
      ++count[ch];
    }
  }
  std::string out;
  if (arrow != std::string::npos) {
    out = eq.substr(arrow + 2);
    size_t p = out.find("...");
    if (p != std::string::npos) {
      std::string ell;
      for (int64_t i = 0; i < ell_rank; ++i) ell += static_cast<char>('A' + i);
      out = out.substr(0, p) + ell + out.substr(p + 3);
    }
  } else {
    for (int64_t i = 0; i < ell_rank; ++i) out += static_cast<char>('A' + i);
    for (const auto& [ch, c] : count)
      if (c == 1 && ch >= 'a') out += ch;
  }
  std::string letters;
  for (const auto& [ch, s] : size) letters += ch;
  std::vector<int64_t> dims;
  for (char ch : letters) dims.push_back(size[ch]);
  std::map<char, size_t> pos;
  for (size_t i = 0; i < letters.size(); ++i) pos[letters[i]] = i;
  std::vector<std::vector<double>> ins;
  std::vector<std::vector<int64_t>> in_strides;
  for (size_t k = 0; k < terms.size(); ++k) {
    std::vector<double> v(ctx.in(k).numel());
    for (int64_t i = 0; i < ctx.in(k).numel(); ++i) v[i] = ReadDouble(ctx.in(k), i);
    ins.push_back(std::move(v));
    std::vector<int64_t> own = Strides(ctx.in(k).dims), s(letters.size(), 0);
    for (size_t i = 0; i < terms[k].size(); ++i)
      if (ctx.in(k).dims[i] != 1) s[pos[terms[k][i]]] += own[i];
    in_strides.push_back(s);
  }
  std::vector<int64_t> out_strides(letters.size(), 0);
  {
    std::vector<int64_t> own = Strides(ctx.out(0).dims);
    for (size_t i = 0; i < out.size(); ++i) out_strides[pos[out[i]]] = own[i];
  }
  std::vector<double> acc(ctx.out(0).numel(), 0.0);
  std::vector<int64_t> idx(letters.size(), 0);
  int64_t total = Product(dims);
  for (int64_t it = 0; it < total; ++it) {
    double p = 1;
    for (size_t k = 0; k < ins.size(); ++k) {
      int64_t off = 0;
      for (size_t i = 0; i < letters.size(); ++i) off += idx[i] * in_strides[k][i];
      p *= ins[k][off];
    }
    int64_t o = 0;
    for (size_t i = 0; i < letters.size(); ++i) o += idx[i] * out_strides[i];
    acc[o] += p;
    for (int64_t d = static_cast<int64_t>(letters.size()) - 1; d >= 0; --d) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
  }
  TensorRef& y = ctx.out(0);
  for (int64_t i = 0; i < y.numel(); ++i) {
    bool ok = VisitType(y.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      y.as<T>()[i] = Store<T>(static_cast<Acc<T>>(acc[i]));
    });
    if (!ok) return ctx.Error("unsupported element type");
  }
  return Status::Ok();
}

}  // namespace

void RegisterEinsumKernels(KernelTable& t) { t["Einsum"] = EinsumKernel; }

}  // namespace amp::cpu
