#include "ops_binding.h"

namespace hbm::py {
void bind_quantize(nanobind::module_&) {}
}
