#include "plan/plan.h"

namespace sparseplan {

const char* rule_kind_name(RuleKind kind) {
  switch (kind) {
    case RuleKind::Dense: return "dense";
    case RuleKind::Window: return "window";
    case RuleKind::Blocks: return "blocks";
    case RuleKind::Online: return "online";
  }
  return "?";
}

const char* text_position_name(TextPosition position) {
  switch (position) {
    case TextPosition::None: return "none";
    case TextPosition::Before: return "before";
    case TextPosition::After: return "after";
  }
  return "?";
}

const char* compensation_name(Compensation compensation) {
  switch (compensation) {
    case Compensation::None: return "none";
    case Compensation::PooledKV: return "pooled_kv";
    case Compensation::ResidualCache: return "residual_cache";
  }
  return "?";
}

}  // namespace sparseplan
