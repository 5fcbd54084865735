// The fused tile order (VideoTiles, attention_params.h) on the device: where a block's tile lies
// in the token grid, and TMA maps whose boxes are whole tiles, so the kernel reads q, k and v
// and writes out and lse in the model's token order with no gather or scatter pass.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "kernels/attention_params.h"

namespace sparseplan::cuda {

// A tile's edge class: bit 2 set where its frames, bit 1 its rows, bit 0 its columns stop at
// the grid's end short of a whole tile. Each class has its own box shape, hence its own maps.
constexpr int kTileEdgeClasses = 8;

// Per edge class, maps of q, k and v as 5-D tensors (heads * head_dim, width, height, frames,
// batch) whose box is (64, the class's tile): a box arrives as the tile's tokens in (f, h, w)
// order, packed as a prefix of its block's rows. Maps of classes the grid lacks stay unset.
// `tiles` holds each tile packed (pack_tile), written once per call: looking a tile up costs
// the producer warp, which runs on few registers, one load instead of integer divisions.
struct WsVideo {
  VideoTiles grid;
  const int2* tiles = nullptr;
  CUtensorMap q[kTileEdgeClasses], k[kTileEdgeClasses], v[kTileEdgeClasses];
};

struct TileSpan {
  int f0, h0, w0;  // its first token
  int fc, hc, wc;  // its extent
  int edge;        // edge class
  __host__ __device__ int tokens() const { return fc * hc * wc; }
  // Model-order index of the tile's i-th token.
  __host__ __device__ int token(const VideoTiles& g, int i) const {
    const int f = i / (hc * wc), h = i / wc % hc, w = i % wc;
    return ((f0 + f) * g.height + h0 + h) * g.width + w0 + w;
  }
};

__host__ __device__ inline int tiles_along(int extent, int tile) {
  return (extent + tile - 1) / tile;
}

__host__ __device__ inline TileSpan tile_span(const VideoTiles& g, int tiles_h, int tiles_w,
                                              int tile) {
  TileSpan s;
  s.w0 = tile % tiles_w * g.tile_w;
  s.h0 = tile / tiles_w % tiles_h * g.tile_h;
  s.f0 = tile / (tiles_w * tiles_h) * g.tile_f;
  s.fc = g.frames - s.f0 < g.tile_f ? g.frames - s.f0 : g.tile_f;
  s.hc = g.height - s.h0 < g.tile_h ? g.height - s.h0 : g.tile_h;
  s.wc = g.width - s.w0 < g.tile_w ? g.width - s.w0 : g.tile_w;
  s.edge = int(s.fc < g.tile_f) << 2 | int(s.hc < g.tile_h) << 1 | int(s.wc < g.tile_w);
  return s;
}

// A tile as 16-bit first-token coordinates and its edge class (check_video bounds the grid).
// In the tile-major order a tile is a run of rows: its first row, its token count and class.
__host__ __device__ inline int2 pack_tile(const VideoTiles& g, const TileSpan& s) {
  if (g.tile_major)
    return int2{s.f0 * g.height * g.width + s.fc * s.h0 * g.width + s.fc * s.hc * s.w0,
                s.tokens() | s.edge << 16};
  return int2{s.w0 | s.h0 << 16, s.f0 | s.edge << 16};
}

// The tile-major run comes back as a one-line span (f0 = h0 = 0, fc = hc = 1) from its first
// row, which token() and the maps of a 1 x 1 x rows grid (encode_video_maps) address alike.
__host__ __device__ inline TileSpan unpack_tile(const VideoTiles& g, int2 packed) {
  TileSpan s;
  if (g.tile_major) {
    s.f0 = s.h0 = 0;
    s.fc = s.hc = 1;
    s.w0 = packed.x;
    s.wc = packed.y & 0xffff;
    s.edge = packed.y >> 16;
    return s;
  }
  s.w0 = packed.x & 0xffff;
  s.h0 = packed.x >> 16;
  s.f0 = packed.y & 0xffff;
  s.edge = packed.y >> 16;
  s.fc = s.edge & 4 ? g.frames - s.f0 : g.tile_f;
  s.hc = s.edge & 2 ? g.height - s.h0 : g.tile_h;
  s.wc = s.edge & 1 ? g.width - s.w0 : g.tile_w;
  return s;
}

// In a table of key tiles beside col_indices (AttentionParams::col_tiles), a column out of
// range: block 0's tile flagged to attend nothing (a bit above pack_tile's edge class).
constexpr int kNoKeys = 1 << 30;

// The tiles (pack_tile) of a stage's key blocks or a pair's query blocks: `count` of them.
struct VideoBlocks {
  int2 tile[2];
  int count;
};

// Bound of a grid extent for pack_tile.
constexpr int kMaxVideoExtent = 1 << 15;

}  // namespace sparseplan::cuda
