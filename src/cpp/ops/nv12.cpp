#include "ops/nv12.h"
