// Layering probe: search may include analyzer: the control that shows the probes compile at all.
#include "analyzer/recall.h"
