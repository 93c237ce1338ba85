// What shim.cpp (built into the binary) and nccl.cpp (libtb_c10d_nccl.so, loaded at run time on
// CUDA ranks) share: the opaque handles the Rust side holds, and the exception guard. Both
// files must see the same layout, so it lives here once.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <cstdlib>
#include <cstring>
#include <string>

namespace tb_c10d {

inline char* dup(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

// Run `f`; return null, or the C++ exception's message (malloc'd) instead of unwinding into Rust.
template <typename F>
char* guarded(F&& f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error& e) {
    // what() appends a C++ backtrace; users get the message alone
    return dup(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return dup(e.what());
  } catch (...) {
    return dup("unknown C++ exception in c10d");
  }
}

struct StoreHandle {
  c10::intrusive_ptr<c10d::Store> store;
};
struct GroupHandle {
  c10::intrusive_ptr<c10d::Backend> backend;
};
struct WorkHandle {
  c10::intrusive_ptr<c10d::Work> work;
};

}  // namespace tb_c10d
