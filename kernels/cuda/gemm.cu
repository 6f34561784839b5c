// GEMMs through cuBLASLt: fp16/bf16/fp32 operands, FP32 accumulation (and
// FP32 scale), row-major as ONNX lays tensors out, with the epilogues
// ai.amp MatMulT asks for (bias, ReLU, bias gradient). cuBLASLt is column-major,
// so C = op(A) op(B) runs as C^T = op(B)^T op(A)^T on the same memory.
#include <cublasLt.h>

#include "kernels/cuda/common.cuh"

namespace amp::cuda {
namespace {

Status Check(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    return Internal("cuBLASLt ", what, " failed: ", cublasLtGetStatusString(st));
  return Status::Ok();
}

cudaDataType_t DataType(int dtype) {
  switch (dtype) {
    case kF16:
      return CUDA_R_16F;
    case kBF16:
      return CUDA_R_16BF;
    default:
      return CUDA_R_32F;
  }
}

// RAII holders for the descriptors.
struct Desc {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Desc() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

Status Layout(cublasLtMatrixLayout_t* l, cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld,
              int64_t batch, int64_t stride) {
  AMP_RETURN_IF_ERROR(Check(cublasLtMatrixLayoutCreate(l, t, rows, cols, ld), "layout"));
  if (batch > 1) {
    int32_t count = static_cast<int32_t>(batch);
    AMP_RETURN_IF_ERROR(Check(cublasLtMatrixLayoutSetAttribute(
                                  *l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)),
                              "batch count"));
    AMP_RETURN_IF_ERROR(
        Check(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                               &stride, sizeof(stride)),
              "batch stride"));
  }
  return Status::Ok();
}

// One thread per byte of the mask: eight columns of one row.
__global__ void ReluMaskKernel(const void* y, int dt, int64_t rows, int64_t n, int64_t row_bytes,
                               uint8_t* mask) {
  int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= rows * row_bytes) return;
  int64_t r = i / row_bytes, j0 = (i % row_bytes) * 8;
  uint8_t bits = 0;
  for (int b = 0; b < 8 && j0 + b < n; ++b)
    if (LoadF(y, dt, r * n + j0 + b) > 0.0f) bits |= uint8_t(1u << b);
  mask[i] = bits;
}

__global__ void ApplyReluMaskKernel(void* y, int dt, const uint8_t* mask, int64_t rows, int64_t n,
                                    int64_t row_bytes) {
  int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= rows * n) return;
  int64_t r = i / n, j = i % n;
  if (!(mask[r * row_bytes + j / 8] >> (j % 8) & 1)) StoreF(y, dt, i, 0.0f);
}

}  // namespace

Status ReluMask(const void* y, int dtype, int64_t rows, int64_t n, void* mask, void* stream) {
  int64_t row_bytes = (n + 127) / 128 * 16;
  if (rows * row_bytes == 0) return Status::Ok();
  ReluMaskKernel<<<Blocks(rows * row_bytes), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      y, dtype, rows, n, row_bytes, static_cast<uint8_t*>(mask));
  return CheckLaunch("ReluMask");
}

Status ApplyReluMask(void* y, int dtype, const void* mask, int64_t rows, int64_t n, void* stream) {
  if (rows * n == 0) return Status::Ok();
  ApplyReluMaskKernel<<<Blocks(rows * n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      y, dtype, static_cast<const uint8_t*>(mask), rows, n, (n + 127) / 128 * 16);
  return CheckLaunch("ApplyReluMask");
}

Status Gemm(void* handle, void* workspace, size_t workspace_bytes, bool trans_a, bool trans_b,
            int64_t m, int64_t n, int64_t k, float alpha, const void* a, const void* b, float beta,
            void* c, int dtype, int c_dtype, int64_t batch, int64_t stride_a, int64_t stride_b,
            int64_t stride_c, void* stream) {
  return Gemm(handle, workspace, workspace_bytes, trans_a, trans_b, m, n, k, alpha, a, b, beta, c,
              dtype, c_dtype, batch, stride_a, stride_b, stride_c, stream, GemmEpilogue{});
}

Status Gemm(void* handle, void* workspace, size_t workspace_bytes, bool trans_a, bool trans_b,
            int64_t m, int64_t n, int64_t k, float alpha, const void* a, const void* b, float beta,
            void* c, int dtype, int c_dtype, int64_t batch, int64_t stride_a, int64_t stride_b,
            int64_t stride_c, void* stream, const GemmEpilogue& ep) {
  bool fused = ep.bias || ep.relu || ep.bias_grad || ep.relu_mask_in;
  if (ep.bias_grad && (ep.bias || ep.relu || ep.relu_mask_in || batch != 1))
    return Unimplemented("a bias gradient with a bias, a ReLU or a batch in one cuBLASLt epilogue");
  if ((ep.relu_mask_out || ep.relu_mask_in) && batch != 1)
    return Unimplemented("a ReLU mask of a batched product");
  if (m == 0 || n == 0 || batch == 0) {
    if (ep.bias_grad && m > 0) return Unimplemented("a bias gradient of an empty product");
    return Status::Ok();
  }
  auto lt = static_cast<cublasLtHandle_t>(handle);
  cudaDataType_t t = DataType(dtype), tc = DataType(c_dtype);
  Desc d;
  AMP_RETURN_IF_ERROR(
      Check(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul desc"));
  // The first cuBLASLt operand is B's memory, the second A's.
  cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  AMP_RETURN_IF_ERROR(Check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA,
                                                           &op_first, sizeof(op_first)),
                            "transa"));
  AMP_RETURN_IF_ERROR(Check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB,
                                                           &op_second, sizeof(op_second)),
                            "transb"));
  if (fused) {
    // Column-major, D is our C transposed and the operands swap: the bias
    // runs along D's rows (our columns, n); our A's bias gradient along D's
    // columns (our rows, m) is cuBLASLt's B's (BGRADB), our B's is BGRADA.
    // A ReLU mask is cuBLASLt's aux bit matrix (the RELU_AUX epilogues write
    // it, DRELU reads it).
    cublasLtEpilogue_t e =
        ep.bias_grad ? (ep.bias_grad_of_b ? CUBLASLT_EPILOGUE_BGRADA : CUBLASLT_EPILOGUE_BGRADB)
        : ep.relu_mask_in ? CUBLASLT_EPILOGUE_DRELU
        : ep.bias         ? (ep.relu ? (ep.relu_mask_out ? CUBLASLT_EPILOGUE_RELU_AUX_BIAS
                                                         : CUBLASLT_EPILOGUE_RELU_BIAS)
                                     : CUBLASLT_EPILOGUE_BIAS)
                  : (ep.relu_mask_out ? CUBLASLT_EPILOGUE_RELU_AUX : CUBLASLT_EPILOGUE_RELU);
    AMP_RETURN_IF_ERROR(
        Check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof(e)),
              "epilogue"));
    const void* aux = ep.relu_mask_out ? ep.relu_mask_out : ep.relu_mask_in;
    if (aux) {
      int64_t ld = (n + 127) / 128 * 128;  // bits; D's rows are our n columns
      AMP_RETURN_IF_ERROR(
          Check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                               &aux, sizeof(aux)),
                "aux pointer"));
      AMP_RETURN_IF_ERROR(Check(cublasLtMatmulDescSetAttribute(
                                    d.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)),
                                "aux ld"));
    }
    const void* vector = ep.bias_grad ? ep.bias_grad : ep.bias;
    if (vector)
      AMP_RETURN_IF_ERROR(
          Check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &vector,
                                               sizeof(vector)),
                "bias pointer"));
  }
  // Column-major views: B row-major [k,n] (or [n,k] transposed) is [n,k] ([k,n]).
  AMP_RETURN_IF_ERROR(
      Layout(&d.a, t, trans_b ? k : n, trans_b ? n : k, trans_b ? k : n, batch, stride_b));
  AMP_RETURN_IF_ERROR(
      Layout(&d.b, t, trans_a ? m : k, trans_a ? k : m, trans_a ? m : k, batch, stride_a));
  AMP_RETURN_IF_ERROR(Layout(&d.c, tc, n, m, n, batch, stride_c));
  AMP_RETURN_IF_ERROR(Check(cublasLtMatmulPreferenceCreate(&d.pref), "preference"));
  AMP_RETURN_IF_ERROR(
      Check(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &workspace_bytes, sizeof(workspace_bytes)),
            "workspace"));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(lt, d.op, d.a, d.b, d.c, d.c, d.pref, 1, &result, &found);
  if (fused && (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS && found == 0)))
    return Unimplemented("cuBLASLt has no kernel for this GEMM epilogue");
  AMP_RETURN_IF_ERROR(Check(st, "heuristic"));
  if (found == 0) return Internal("cuBLASLt has no algorithm for a ", m, "x", n, "x", k, " GEMM");
  return Check(cublasLtMatmul(lt, d.op, &alpha, b, d.a, a, d.b, &beta, c, d.c, c, d.c, &result.algo,
                              workspace, workspace_bytes, static_cast<cudaStream_t>(stream)),
               "matmul");
}

}  // namespace amp::cuda
