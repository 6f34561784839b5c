#include "compiler/text.h"

#include <cmath>
#include <cstdio>

#include "compiler/onnx_import.h"
#include "onnx/defs/parser.h"

namespace amp {

StatusOr<Model> ParseModelText(const std::string& text) {
  onnx::ModelProto proto;
  onnx::Common::Status st;
  try {
    st = onnx::OnnxParser::Parse(proto, text.c_str());
  } catch (const std::exception& e) {
    return InvalidArgument("cannot parse ONNX text: ", e.what());
  }
  if (!st.IsOK()) return InvalidArgument("cannot parse ONNX text: ", st.ErrorMessage());
  return ImportModelProto(proto, "");
}

namespace {

std::string FormatFloat(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  std::string s(buf);
  // The parser reads a number without '.' as an integer: keep floats floats.
  size_t e = s.find_first_of("eE");
  std::string mant = s.substr(0, e);
  if (mant.find('.') == std::string::npos) mant += ".0";
  return e == std::string::npos ? mant : mant + s.substr(e);
}

std::string FormatTensorValues(const Tensor& t) {
  if (t.num_elements() > kMaxPrintedElements) return "{...}";
  std::string s = "{";
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    if (i) s += ", ";
    s += IsFloat(t.dtype()) ? FormatFloat(t.GetDouble(i)) : std::to_string(t.GetInt(i));
  }
  return s + "}";
}

std::string FormatTensor(const Tensor& t) {
  // A scalar literal is written without dims ("int64 {0}"): that is what the parser reads.
  std::string dims = t.dims().empty() ? "" : ShapeToString(ShapeFromDims(t.dims()));
  return StrCat(DTypeName(t.dtype()), dims, " ", FormatTensorValues(t));
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string FormatAttribute(const Attribute& a) {
  switch (a.kind) {
    case Attribute::Kind::kFloat:
      return FormatFloat(a.f);
    case Attribute::Kind::kInt:
      return std::to_string(a.i);
    case Attribute::Kind::kString:
      return Quote(a.s);
    case Attribute::Kind::kTensor:
      return FormatTensor(a.t);
    case Attribute::Kind::kFloats: {
      std::string s = "[";
      for (size_t i = 0; i < a.floats.size(); ++i) s += (i ? ", " : "") + FormatFloat(a.floats[i]);
      return s + "]";
    }
    case Attribute::Kind::kInts: {
      std::string s = "[";
      for (size_t i = 0; i < a.ints.size(); ++i) s += (i ? ", " : "") + std::to_string(a.ints[i]);
      return s + "]";
    }
    case Attribute::Kind::kStrings: {
      std::string s = "[";
      for (size_t i = 0; i < a.strings.size(); ++i) s += (i ? ", " : "") + Quote(a.strings[i]);
      return s + "]";
    }
  }
  return "";
}

std::string FormatValueDecl(const Value* v) {
  const TensorType& t = v->type();
  std::string s(DTypeName(t.dtype));
  // The parser reads "float x" as a scalar, so rank 0 prints without "[]" (and
  // an unknown rank, rare after inference, reads back as a scalar).
  if (t.shape && !t.shape->empty()) s += ShapeToString(*t.shape);
  return s + " " + v->name();
}

}  // namespace

std::string PrintModel(const Model& model) {
  std::string out = StrCat("<ir_version: ", model.ir_version, ", opset_import: [");
  for (size_t i = 0; i < model.opsets.size(); ++i)
    out += StrCat(i ? ", " : "", Quote(model.opsets[i].domain), " : ", model.opsets[i].version);
  out += "]>\n";
  const Graph& g = *model.graph;
  out += g.name.empty() ? "main" : g.name;
  out += " (";
  for (size_t i = 0; i < g.inputs().size(); ++i)
    out += (i ? ", " : "") + FormatValueDecl(g.inputs()[i]);
  out += ") => (";
  for (size_t i = 0; i < g.outputs().size(); ++i)
    out += (i ? ", " : "") + FormatValueDecl(g.outputs()[i]);
  out += ")\n";
  auto inits = g.initializers();
  if (!inits.empty()) {
    out += "<\n";
    for (size_t i = 0; i < inits.size(); ++i)
      out +=
          StrCat("  ", FormatValueDecl(inits[i]), " = ",
                 FormatTensorValues(*inits[i]->initializer()), i + 1 < inits.size() ? ",\n" : "\n");
    out += ">\n";
  }
  out += "{\n";
  for (const Node* n : g.nodes()) {
    std::string line = "  ";
    for (size_t i = 0; i < n->num_outputs(); ++i) line += (i ? ", " : "") + n->output(i)->name();
    line += " = ";
    if (!n->domain().empty()) line += n->domain() + ".";
    line += n->op_type();
    if (!n->attributes().empty()) {
      line += " <";
      bool first = true;
      for (const auto& [name, attr] : n->attributes()) {
        line += StrCat(first ? "" : ", ", name, " = ", FormatAttribute(attr));
        first = false;
      }
      line += ">";
    }
    line += " (";
    for (size_t i = 0; i < n->num_inputs(); ++i)
      line += (i ? ", " : "") + (n->input(i) ? n->input(i)->name() : "");
    line += ")";
    std::string types;
    for (size_t i = 0; i < n->num_outputs(); ++i)
      types += (i ? ", " : "") + n->output(i)->type().ToString();
    if (line.size() < 60) line.resize(60, ' ');
    std::string precision = n->precision().name();
    out += line + "  # " + types + (precision.empty() ? "" : " [" + precision + "]") + "\n";
  }
  out += "}\n";
  return out;
}

}  // namespace amp
