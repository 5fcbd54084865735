// Layering probe: analyzer may not include search (search sits above analyzer).
#include "search/plan_search.h"
