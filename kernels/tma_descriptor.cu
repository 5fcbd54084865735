#include "kernels/tma_descriptor.h"

#include <cuda_runtime_api.h>
#include <cudaTypedefs.h>

namespace sparseplan::cuda {
namespace {

// The driver's encoder through the runtime's entry-point query, so the library does not link
// libcuda directly (CI machines have the toolkit but no driver).
PFN_cuTensorMapEncodeTiled_v12000 encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult status{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault,
                                         &status) != cudaSuccess ||
        status != cudaDriverEntryPointSuccess)
      p = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

// A dimension of extent 1 is never stepped over, but the encoder still checks its stride.
cuuint64_t stride_bytes(int64_t stride, int extent, cuuint64_t fallback) {
  return extent == 1 ? fallback : cuuint64_t(stride) * 2;
}

}  // namespace

bool encode_tile_map(CUtensorMap* map, const TileMapShape& s) {
  const auto encode = encoder();
  if (encode == nullptr || s.batch <= 0 || s.rows <= 0 || s.heads <= 0) return false;
  const cuuint64_t dims[4] = {cuuint64_t(s.head_dim), cuuint64_t(s.rows), cuuint64_t(s.heads),
                              cuuint64_t(s.batch)};
  const cuuint64_t row = stride_bytes(s.row_stride, s.rows, cuuint64_t(s.head_dim) * 2);
  const cuuint64_t head = stride_bytes(s.head_stride, s.heads, row * s.rows);
  const cuuint64_t strides[3] = {row, head,
                                 stride_bytes(s.batch_stride, s.batch, head * s.heads)};
  const cuuint32_t box[4] = {64, cuuint32_t(s.box_rows), 1, 1};
  const cuuint32_t unit[4] = {1, 1, 1, 1};
  const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 4, const_cast<void*>(s.base),
                            dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS;
}

bool encode_video_map(CUtensorMap* map, const VideoMapShape& s) {
  const auto encode = encoder();
  if (encode == nullptr || s.batch <= 0 || s.frames <= 0 || s.height <= 0 || s.width <= 0)
    return false;
  const cuuint64_t dims[5] = {cuuint64_t(s.row_elements), cuuint64_t(s.width),
                              cuuint64_t(s.height), cuuint64_t(s.frames), cuuint64_t(s.batch)};
  // Token rows follow each other row_stride apart in frame-major order.
  const cuuint64_t row = cuuint64_t(s.row_stride) * 2;
  const cuuint64_t line = row * s.width, frame = line * s.height;
  const cuuint64_t strides[4] = {row, line, frame,
                                 stride_bytes(s.batch_stride, s.batch, frame * s.frames)};
  const cuuint32_t box[5] = {64, cuuint32_t(s.box_w), cuuint32_t(s.box_h), cuuint32_t(s.box_f), 1};
  const cuuint32_t unit[5] = {1, 1, 1, 1, 1};
  const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 5, const_cast<void*>(s.base),
                            dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS;
}

}  // namespace sparseplan::cuda
