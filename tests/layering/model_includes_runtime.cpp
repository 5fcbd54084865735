// Layering probe: model may not include runtime (runtime sits above model).
#include "runtime/plan_backend.h"
