#include "ops/quantize.h"
