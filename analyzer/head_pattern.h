// What a head attends to, in words and numbers: the shares of its attention mass (mean over
// samples, in the tile geometry of the capture) that fall in the structures plan rules can
// express, and the label those shares imply.
#pragma once

#include <string>

#include "plan/tile_geometry.h"
#include "analyzer/recall.h"

namespace sparseplan {

enum class HeadPattern { LocalWindow, SpatialOnly, TemporalStripe, Cross, GlobalDiffuse, SinkDominated };

const char* head_pattern_name(HeadPattern p);

struct HeadPatternNumbers {
  double same_frame = 0.0;      // key tile in the query tile's frame
  double local_window = 0.0;    // key tile within 1 tile of the query tile in f, h and w
  double local_in_frame = 0.0;  // of the same-frame mass, the share within 1 tile in h and w
  double frame_spread = 0.0;    // same-frame mass away from the query tile's (h, w)
  double same_position = 0.0;   // key tile at the query tile's (h, w), any frame
  double stripe_far = 0.0;      // ... in another frame
  double first_frame = 0.0;     // of queries outside the first tile frame, mass on it
  double top_blocks = 0.0;      // mass on the top 1/64 of key blocks (at least 1)
  double text = 0.0;            // mass on text key blocks
  double density_90 = 0.0;      // oracle density at recall 0.9 (mean over samples)
};

struct HeadPatternResult {
  HeadPattern pattern = HeadPattern::GlobalDiffuse;
  HeadPatternNumbers numbers;
  std::string reason;  // the numbers that decided the label
};

// Labels in this order: sink-dominated (first frame or top blocks >= 0.5), global/diffuse
// (density at 90% recall >= 0.5), cross-shaped (frame spread >= 0.2, stripe >= 0.2, together
// with the own tile >= 0.75), temporal stripe (same position >= 0.6 with >= 0.35 in other
// frames), spatial-only
// (same frame >= 0.7 spread over the frame), local 3D window (local window >= 0.6); anything
// else is global/diffuse.
HeadPatternResult classify_head(const TileGeometry& geometry, const HeadMass& mass);

}  // namespace sparseplan
