#include "conv3d.cuh"
#include "common.cuh"
namespace ts { namespace cuda {
void conv3d_forward(Tensor&, const Tensor&, const Tensor&, const Tensor&, const Conv3dGeometry&) { fail("conv3d", "not supported on cuda"); }
void conv3d_backward(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const Conv3dGeometry&) { fail("conv3d", "not supported on cuda"); }
}}
