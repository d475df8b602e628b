// BGR/RGB -> NV12 colour conversion.
#pragma once
