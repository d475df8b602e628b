#include "ops_binding.h"

namespace hbm::py {
void bind_nv12(nanobind::module_&) {}
}
