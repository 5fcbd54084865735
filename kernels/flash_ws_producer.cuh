// Producer warps of the warp-specialized attention kernel: for each tile, Q into the Q ring and
// every key chunk's K into the K ring and V into the V ring, all by TMA (rows past the sequence
// end arrive as zeros).
#pragma once

#include <cstdint>

#include "kernels/flash_ws_scheduler.cuh"
#include "kernels/sm90_sync.cuh"

namespace sparseplan::cuda {

// The calling warp's 32 lanes zero rows [from, to) of a [kRows x kHeadDim] tile.
template <typename Traits, int kRows = Traits::kBlockN>
__device__ __forceinline__ void zero_rows(uint32_t smem, int from, int to = kRows) {
  constexpr int kChunksPerRow = Traits::kHeadDim / 8;
  from = max(from, 0);
  for (int idx = threadIdx.x % 32; idx < (to - from) * kChunksPerRow; idx += 32) {
    const int row = from + idx / kChunksPerRow, chunk = idx % kChunksPerRow;
    asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(
                     smem + Traits::template sw128<kRows>(row, chunk)),
                 "r"(0)
                 : "memory");
  }
}

template <typename Traits>
__device__ __forceinline__ void load_tile_tma(uint32_t smem, const CUtensorMap* map, uint64_t* full,
                                              int bytes, int rows, int row0, int h, int b) {
  sm90::mbarrier_arrive_expect_tx(full, bytes);
#pragma unroll
  for (int c = 0; c < Traits::kHeadDim / 64; ++c)
    sm90::tma_load_4d(smem + c * rows * 128, map, full, c * 64, row0, h, b);
}

// A key chunk into a K or V stage: one box of kBlockN rows, or (a stage of two 64-key blocks,
// whose maps have boxes of 64 rows) two boxes from the two blocks' starts.
template <typename Traits>
__device__ __forceinline__ void load_chunk_tma(uint32_t smem, const CUtensorMap* map,
                                               uint64_t* full, const KeyChunk& c, bool two_blocks,
                                               int h, int b) {
  if (two_blocks) {
    sm90::mbarrier_arrive_expect_tx(full, Traits::kKBytes);
#pragma unroll
    for (int col = 0; col < Traits::kHeadDim / 64; ++col) {
      const uint32_t block = smem + col * Traits::kBlockN * 128;
      sm90::tma_load_4d(block, map, full, col * 64, c.key_start, h, b);
      sm90::tma_load_4d(block + 64 * 128, map, full, col * 64, c.second_start, h, b);
    }
  } else {
    load_tile_tma<Traits>(smem, map, full, Traits::kKBytes, Traits::kBlockN, c.key_start, h, b);
  }
}

// A pair's two 64-row query blocks into rows 0 and 64 of a Q stage (a map with 64-row boxes),
// each from its own block, so any two blocks can share a tile (AttentionParams::q_pair_order).
// Past an odd count the second is none: its rows keep stale data, which its warpgroup's
// epilogue never writes out.
template <typename Traits>
__device__ __forceinline__ void load_query_pair(uint32_t smem, const CUtensorMap* map,
                                                uint64_t* full, const WsTile& t, int block0,
                                                int block1) {
  const int count = block1 < 0 ? 1 : 2;
  sm90::mbarrier_arrive_expect_tx(full, count * 64 * Traits::kHeadDim * 2);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (i >= count) break;
#pragma unroll
    for (int c = 0; c < Traits::kHeadDim / 64; ++c)
      sm90::tma_load_4d(smem + c * Traits::kBlockM * 128 + i * 64 * 128, map, full, c * 64,
                        (i == 0 ? block0 : block1) * 64, t.h, t.b);
  }
}

// The tiles of blocks block0 and block1 (-1: none) of the fused tile order (pack_tile), looked
// up before the producer waits for a free stage, so the lookup's latency hides behind the wait
// instead of delaying the loads (measured: 10-25% of the fused kernels' time when it did not).
__device__ __forceinline__ VideoBlocks video_blocks(const WsVideo& v, int block0, int block1) {
  VideoBlocks r;
  r.count = block0 < 0 ? 0 : block1 < 0 ? 1 : 2;
  r.tile[0] = r.count > 0 ? __ldg(v.tiles + block0) : int2{0, 0};
  r.tile[1] = r.count > 1 ? __ldg(v.tiles + block1) : int2{0, 0};
  return r;
}

// The fused tile order (WsVideo): `blocks`, as tiles of the model-order (or tile-major) tensor
// behind `maps`, into rows 0 and 64 of a [kRows x kHeadDim] stage. Only a tile's tokens
// arrive, each tile's bytes announced before its loads: rows past them keep what the stage
// held (see produce).
template <typename Traits, int kRows>
__device__ __forceinline__ void load_video_blocks(uint32_t smem, const WsVideo& v,
                                                  const CUtensorMap* maps, uint64_t* full,
                                                  const VideoBlocks& blocks, int head, int b) {
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (i >= blocks.count) break;
    const TileSpan s = unpack_tile(v.grid, blocks.tile[i]);
    sm90::mbarrier_expect_tx(full, s.tokens() * Traits::kHeadDim * 2);
#pragma unroll
    for (int c = 0; c < Traits::kHeadDim / 64; ++c)
      sm90::tma_load_5d(smem + c * kRows * 128 + i * 64 * 128, maps + s.edge, full,
                        head * Traits::kHeadDim + c * 64, s.w0, s.h0, s.f0, b);
  }
  sm90::mbarrier_arrive(full);
}

// Producer warp 0: the tile's Q into the next Q stage, a pair's two 64-row blocks or one tile
// of kBlockM rows (in the fused order their tiles, looked up before the wait for a free
// stage).
template <typename Traits, bool kPaired, bool kFused>
__device__ __forceinline__ void load_tile_q(const WsParams& wp, const WsTile& t, uint32_t s_base,
                                            WsBarriers<Traits>& bar,
                                            sm90::PipelineState<Traits::kQStages>& qs,
                                            bool leader) {
  const AttentionParams& p = wp.a;
  VideoBlocks q_blocks{};
  if (leader && kFused) {
    // The tile's query blocks: one, or a pair's two (the second none past an odd count).
    if constexpr (kPaired)
      q_blocks = video_blocks(wp.video, pair_query_block(p, t, 0), pair_query_block(p, t, 1));
    else q_blocks = video_blocks(wp.video, t.q_tile, -1);
  }
  sm90::mbarrier_wait(&bar.q_empty[qs.stage], qs.phase ^ 1);
  const uint32_t sQ = s_base + Traits::kQOffset + qs.stage * Traits::kQBytes;
  if (leader && kFused) {
    load_video_blocks<Traits, Traits::kBlockM>(sQ, wp.video, wp.video.q, &bar.q_full[qs.stage],
                                               q_blocks, t.h, t.b);
  } else if (leader && kPaired) {
    load_query_pair<Traits>(sQ, &wp.tma_q, &bar.q_full[qs.stage], t, pair_query_block(p, t, 0),
                            pair_query_block(p, t, 1));
  } else if (leader) {
    load_tile_tma<Traits>(sQ, &wp.tma_q, &bar.q_full[qs.stage], Traits::kQBytes,
                          Traits::kBlockM, t.q_tile * Traits::kBlockM, t.h, t.b);
  }
  qs.advance();
}

// Whether producer warp 1 loads V (see produce).
template <bool kSparse, bool kPaired, bool kFused>
constexpr bool v_warp() {
  return !kSparse || (kFused && kPaired);
}

// Whether producer warp 1 walks the tiles: without V to load or padding to clear it stays out
// of the way (walking the chunk list alongside for nothing measured 5-8% slower dense
// attention).
template <bool kSparse, bool kLoadV, bool kPaired, bool kFused>
__device__ __forceinline__ bool second_producer_walks(const AttentionParams& p) {
  return kLoadV && (v_warp<kSparse, kPaired, kFused>() || p.kv_block_valid != nullptr);
}

// Two producer warps walk the same tiles and chunks. Warp 0 loads Q and K by TMA and hands
// each chunk's valid-key count over with its K. Who loads V was measured per kind: for dense
// attention warp 1 does, so that a V stage, freed a chunk later than a K stage (after P V),
// never holds back the next K load (dense 2-5% faster); block-sparse rows ran 2-5% slower that
// way, so there warp 0 loads each chunk's K and then its V. Paired tiles in the fused tile
// order look up two tiles a stage and issue a TMA per tile: with one warp doing K and V the
// walk fell behind (Nsight Compute: the consumers waited on K 3x as long as on gathered
// tensors, the producer never on a free stage), so there warp 1 loads V (3-4% faster; 128-row
// tiles of one block measured 1-2% slower that way). A chunk whose key block is padded
// inside the sequence (kv_block_valid; a bad block then reads block 0, padding included)
// arrives whole (in the fused tile order only its tokens arrive, and the rows past them keep
// what the stage held before): its K needs nothing more (the consumers mask those scores),
// but its V rows past the valid keys may hold anything (the caller's padding, NaN in the
// tests), and P x V must not meet them, so that V lands on v_landed and warp 1 zeroes the rows
// before releasing it on v_full. kLoadV = false feeds block mass (Q and K only). kPaired:
// pairs of 64-row query blocks (WsSchedule).
template <typename Traits, bool kSparse, bool kLoadV = true, bool kPaired = false,
          bool kFused = false>
__device__ __forceinline__ void produce(const WsParams& wp, uint8_t* smem,
                                        WsBarriers<Traits>& bar) {
  constexpr bool kVWarp = v_warp<kSparse, kPaired, kFused>();  // warp 1 loads V
  const AttentionParams& p = wp.a;
  const WsSchedule<Traits, kSparse, kPaired, kFused> schedule{p};
  const bool k_warp = threadIdx.x / 32 == 0;
  const bool leader = threadIdx.x % 32 == 0;
  if (!k_warp && !second_producer_walks<kSparse, kLoadV, kPaired, kFused>(p)) return;
  const bool v_loader = kVWarp != k_warp;
  const uint32_t s_base = sm90::smem_u32(smem);
  constexpr bool fused = kFused;
  sm90::PipelineState<Traits::kQStages> qs;
  sm90::PipelineState<Traits::kKStages> ks;
  sm90::PipelineState<Traits::kVStages> vs;
  // Parity of v_landed per V stage: it completes once per padded use of a stage, and warp 1
  // waits for each in order, so the parity is exact.
  uint32_t landed_phase = 0;
  WsItems<Traits, kSparse> items{p, bar, schedule.num_items()};
  for (int i = k_warp ? items.draw() : items.take(); i >= 0;
       i = k_warp ? items.draw() : items.take()) {
    const WsTile t = schedule.tile(i);
    const int kvh = t.h / (p.heads / p.kv_heads);
    if (k_warp) load_tile_q<Traits, kPaired, kFused>(wp, t, s_base, bar, qs, leader);
    const auto chunks = schedule.chunks(t);
    const int n = chunks.count();
    bool two_blocks = false;  // stages of two 64-key blocks
    if constexpr (kPaired && Traits::kBlockN == 128) two_blocks = chunks.two_per_stage;
    const int rows = two_blocks ? 64 : Traits::kBlockN;  // of one block in a stage
    for (int j = 0; j < n; ++j) {
      VideoBlocks kv_blocks{};
      KeyChunk c;
      if constexpr (kFused) {
        // key_start stays 0: the fused order's blocks all lie whole inside kv_len.
        c = chunks.video_chunk(j, wp.video.grid, kv_blocks);
      } else {
        c = chunks(j);
      }
      if (k_warp) {
        sm90::mbarrier_wait(&bar.k_empty[ks.stage], ks.phase ^ 1);
        if (leader) {
          atomicExch(&bar.valid[ks.stage],
                     two_blocks ? c.valid | c.second_valid << 8 | kSecondBlockValid : c.valid);
          const uint32_t sK = s_base + Traits::kKOffset + ks.stage * Traits::kKBytes;
          if (fused)
            load_video_blocks<Traits, Traits::kBlockN>(sK, wp.video, wp.video.k,
                                                       &bar.k_full[ks.stage], kv_blocks, kvh, t.b);
          else
            load_chunk_tma<Traits>(sK, &wp.tma_k, &bar.k_full[ks.stage], c, two_blocks, kvh, t.b);
        }
        ks.advance();
      }
      if constexpr (kLoadV) {
        const bool padded_first = p.kv_block_valid != nullptr &&
                                  c.valid < min(rows, p.kv_len - c.key_start);
        const bool padded_second = two_blocks && p.kv_block_valid != nullptr &&
                                   c.second_valid < min(rows, p.kv_len - c.second_start);
        const bool padded = padded_first || padded_second;
        const int st = vs.stage;
        const uint32_t sV = s_base + Traits::kVOffset + st * Traits::kKBytes;
        if (v_loader) {
          sm90::mbarrier_wait(&bar.v_empty[st], vs.phase ^ 1);
          uint64_t* full = padded ? &bar.v_landed[st] : &bar.v_full[st];
          if (leader && fused)
            load_video_blocks<Traits, Traits::kBlockN>(sV, wp.video, wp.video.v, full, kv_blocks,
                                                       kvh, t.b);
          else if (leader)
            load_chunk_tma<Traits>(sV, &wp.tma_v, full, c, two_blocks, kvh, t.b);
        }
        if (!k_warp && padded) {
          sm90::mbarrier_wait(&bar.v_landed[st], (landed_phase >> st) & 1);
          landed_phase ^= 1u << st;
          if (padded_first) zero_rows<Traits>(sV, c.valid, rows);
          if (padded_second) zero_rows<Traits>(sV, 64 + c.second_valid);
          sm90::fence_proxy_async();  // the consumers read through wgmma (the async proxy)
          __syncwarp();
          if (leader) sm90::mbarrier_arrive(&bar.v_full[st]);
        }
        vs.advance();
      }
    }
  }
}

}  // namespace sparseplan::cuda
