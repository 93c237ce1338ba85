// A C interface to libtorch's own c10d (TCPStore rendezvous, ProcessGroupGloo, and the
// collectives of any backend, NCCL's included: see nccl.cpp), for the Rust side in
// src/engine/dist/. Tensors are tch's `at::Tensor*`. Every call catches C++ exceptions
// and returns the message (malloc'd; freed by tb_c10d_free_error) instead of unwinding into Rust.
#include "handles.hpp"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using tb_c10d::GroupHandle;
using tb_c10d::StoreHandle;
using tb_c10d::WorkHandle;
using tb_c10d::guarded;

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 1:
      return c10d::ReduceOp::AVG;
    case 2:
      return c10d::ReduceOp::MAX;
    default:
      return c10d::ReduceOp::SUM;
  }
}

}  // namespace

extern "C" {

void tb_c10d_free_error(char* e) { std::free(e); }

// A TCPStore client, or the server too when `is_server` (rank 0 of our own launcher; under
// torchrun the agent hosts it). Keys live under `prefix` so that a store shared with
// torchrun's agent does not collide with its keys.
char* tb_c10d_store_new(const char* host, uint16_t port, int world_size, bool is_server,
                        int64_t timeout_ms, const char* prefix, StoreHandle** out) {
  return guarded([&] {
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = is_server;
    opts.numWorkers = world_size;
    opts.waitWorkers = false;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(host, opts);
    auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, tcp);
    *out = new StoreHandle{store};
  });
}

void tb_c10d_store_free(StoreHandle* s) { delete s; }

char* tb_c10d_store_set(StoreHandle* s, const char* key, const uint8_t* data, size_t len) {
  return guarded([&] { s->store->set(key, std::vector<uint8_t>(data, data + len)); });
}

// Blocks until `key` is set (or the store's timeout), then copies at most `cap` bytes.
char* tb_c10d_store_get(StoreHandle* s, const char* key, uint8_t* data, size_t cap, size_t* len) {
  return guarded([&] {
    auto v = s->store->get(key);
    *len = v.size();
    std::memcpy(data, v.data(), std::min(cap, v.size()));
  });
}

char* tb_c10d_store_add(StoreHandle* s, const char* key, int64_t delta, int64_t* value) {
  return guarded([&] { *value = s->store->add(key, delta); });
}

char* tb_c10d_gloo_new(StoreHandle* s, int rank, int size, int64_t timeout_ms,
                       GroupHandle** out) {
  return guarded([&] {
    auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(timeout_ms));
    // Loopback unless the host name resolves (as torch's default device does; GLOO_SOCKET_IFNAME
    // is honoured the same way by torch's Python side only, so we read it here too).
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(s->store, rank, size, opts);
    *out = new GroupHandle{pg};
  });
}

void tb_c10d_group_free(GroupHandle* g) { delete g; }

char* tb_c10d_allreduce(GroupHandle* g, at::Tensor* t, int op, WorkHandle** out) {
  return guarded([&] {
    std::vector<at::Tensor> v{*t};
    c10d::AllreduceOptions o;
    o.reduceOp = reduce_op(op);
    *out = new WorkHandle{g->backend->allreduce(v, o)};
  });
}

char* tb_c10d_broadcast(GroupHandle* g, at::Tensor* t, int root, WorkHandle** out) {
  return guarded([&] {
    std::vector<at::Tensor> v{*t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    *out = new WorkHandle{g->backend->broadcast(v, o)};
  });
}

// output: (world · n) flat, input: n flat; rank r's input lands at [r·n, (r+1)·n).
char* tb_c10d_all_gather(GroupHandle* g, at::Tensor* output, at::Tensor* input,
                         WorkHandle** out) {
  return guarded([&] { *out = new WorkHandle{g->backend->_allgather_base(*output, *input)}; });
}

// input: (world · n) flat, output: n flat = the reduction of every rank's slice r.
char* tb_c10d_reduce_scatter(GroupHandle* g, at::Tensor* output, at::Tensor* input, int op,
                             WorkHandle** out) {
  return guarded([&] {
    c10d::ReduceScatterOptions o;
    o.reduceOp = reduce_op(op);
    *out = new WorkHandle{g->backend->_reduce_scatter_base(*output, *input, o)};
  });
}

char* tb_c10d_barrier(GroupHandle* g, WorkHandle** out) {
  return guarded([&] { *out = new WorkHandle{g->backend->barrier()}; });
}

char* tb_c10d_work_wait(WorkHandle* w) {
  return guarded([&] { w->work->wait(); });
}

void tb_c10d_work_free(WorkHandle* w) { delete w; }

}  // extern "C"
