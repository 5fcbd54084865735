// Layering probe: plan may not include io (io sits above plan).
#include "io/capture_file.h"
