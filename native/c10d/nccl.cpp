// libtb_c10d_nccl.so: a ProcessGroupNCCL for CUDA ranks, over the same store and handles as
// shim.cpp. It is a separate library because ProcessGroupNCCL lives in libtorch_cuda.so, which
// the binary does not link (one binary runs on machines without CUDA): the engine dlopens
// libtorch_cuda.so, then this file's library, when a multi-process run asks for CUDA. Every
// collective then goes through shim.cpp's calls on the returned handle (c10d::Backend's virtual
// methods), as for gloo.
#include "handles.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <chrono>

using tb_c10d::GroupHandle;
using tb_c10d::StoreHandle;

extern "C" char* tb_c10d_nccl_new(StoreHandle* s, int rank, int size, int64_t timeout_ms,
                                  GroupHandle** out) {
  return tb_c10d::guarded([&] {
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = std::chrono::milliseconds(timeout_ms);
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(s->store, rank, size, opts);
    *out = new GroupHandle{pg};
  });
}
