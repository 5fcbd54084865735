// Layering probe: search may not include runtime (they are separate branches).
#include "runtime/plan_backend.h"
