// Layering probe: kernels may not include plan (kernels depend on nothing).
#include "plan/plan.h"
