// Layering probe: io may not include search (search sits above io).
#include "search/plan_search.h"
