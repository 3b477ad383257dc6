/* CLabLayouts has nothing to compile: its header is all there is (a C target needs one source). */
#include "CLabLayouts.h"
