/* The CFloodgate module has no logic of its own; see include/CFloodgate.h. */
#include "CFloodgate.h"
