// Quantize / dequantize with a scale and zero point, per tensor or per axis.
#pragma once
