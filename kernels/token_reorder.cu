// Token reordering between model order and tile order as a 16-byte-vector row gather, and the
// table of the fused tile order's blocks.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/attention_api.h"
#include "kernels/launch.h"
#include "kernels/video_tiles.cuh"

namespace sparseplan::cuda {
namespace {

__global__ void gather_rows_kernel(const uint8_t* src, int64_t src_batch_stride, int64_t src_rows,
                                   uint8_t* dst, int64_t dst_batch_stride, int64_t dst_rows,
                                   int64_t vectors_per_row, int batch, const int32_t* index) {
  const int64_t total = int64_t(batch) * dst_rows * vectors_per_row;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t vec = i % vectors_per_row;
    const int64_t row = (i / vectors_per_row) % dst_rows;
    const int64_t b = i / (vectors_per_row * dst_rows);
    const int32_t s = index[row];
    uint4 val = make_uint4(0, 0, 0, 0);
    if (s >= 0 && s < src_rows)
      val = reinterpret_cast<const uint4*>(src + b * src_batch_stride +
                                           s * vectors_per_row * 16)[vec];
    reinterpret_cast<uint4*>(dst + b * dst_batch_stride + row * vectors_per_row * 16)[vec] = val;
  }
}

__global__ void video_tile_table_kernel(VideoTiles grid, int tiles_h, int tiles_w, int tiles,
                                        int32_t* valid, int2* spans) {
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < tiles; t += gridDim.x * blockDim.x) {
    const TileSpan s = tile_span(grid, tiles_h, tiles_w, t);
    valid[t] = s.tokens();
    spans[t] = pack_tile(grid, s);
  }
}

__global__ void video_column_tiles_kernel(const int32_t* cols, int64_t num_cols, int tiles,
                                          const int2* spans, int2* col_tiles) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < num_cols;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int c = cols[i];
    int2 tile = spans[c >= 0 && c < tiles ? c : 0];
    if (c < 0 || c >= tiles) tile.y |= kNoKeys;
    col_tiles[i] = tile;
  }
}

}  // namespace

namespace detail {
void video_column_tiles(const int32_t* cols, int64_t num_cols, int tiles, const int32_t* spans,
                        int32_t* col_tiles, cudaStream_t stream) {
  if (num_cols == 0) return;
  const int blocks = int(std::min<int64_t>((num_cols + 255) / 256, 1024));
  video_column_tiles_kernel<<<blocks, 256, 0, stream>>>(
      cols, num_cols, tiles, reinterpret_cast<const int2*>(spans),
      reinterpret_cast<int2*>(col_tiles));
  check_cuda(cudaGetLastError(), "video column tiles launch");
}

void video_tile_table(const VideoTiles& grid, int tiles, int32_t* valid, int32_t* spans,
                      cudaStream_t stream) {
  if (tiles == 0) return;
  video_tile_table_kernel<<<std::min((tiles + 255) / 256, 1024), 256, 0, stream>>>(
      grid, tiles_along(grid.height, grid.tile_h), tiles_along(grid.width, grid.tile_w), tiles,
      valid, reinterpret_cast<int2*>(spans));
  check_cuda(cudaGetLastError(), "video tile table launch");
}
}  // namespace detail

void gather_rows(const void* src, int64_t src_batch_stride, int64_t src_rows, void* dst,
                 int64_t dst_batch_stride, int64_t dst_rows, int64_t row_bytes, int batch,
                 const int32_t* index, cudaStream_t stream) {
  if (row_bytes <= 0 || row_bytes % 16 != 0)
    throw std::invalid_argument("gather_rows: row_bytes must be a positive multiple of 16, got " +
                                std::to_string(row_bytes));
  if ((reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst)) % 16 != 0 ||
      src_batch_stride % 16 != 0 || dst_batch_stride % 16 != 0)
    throw std::invalid_argument("gather_rows: src and dst must be 16-byte aligned");
  const int64_t total = int64_t(batch) * dst_rows * (row_bytes / 16);
  if (total == 0) return;
  const int blocks = int(std::min<int64_t>((total + 255) / 256, 4096));
  gather_rows_kernel<<<blocks, 256, 0, stream>>>(
      static_cast<const uint8_t*>(src), src_batch_stride, src_rows, static_cast<uint8_t*>(dst),
      dst_batch_stride, dst_rows, row_bytes / 16, batch, index);
  detail::check_cuda(cudaGetLastError(), "gather_rows launch");
}

}  // namespace sparseplan::cuda
