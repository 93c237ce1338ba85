//! With the `engine` feature:
//! - record libtorch's library folder in the binaries' run path, so `tunebridge` (and the test
//!   binaries) start without LD_LIBRARY_PATH on the machine that built them. LD_LIBRARY_PATH
//!   still wins where it is set (the GPU machines, docs/ENGINE-BUILD.md);
//! - compile `native/c10d/shim.cpp`, the C interface to libtorch's own c10d (TCPStore,
//!   ProcessGroupGloo) that `src/engine/dist/` calls, against the same libtorch headers.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_ENGINE").is_none() {
        return;
    }
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        panic!(
            "the `engine` feature needs LIBTORCH (the libtorch 2.11 folder with include/ and lib/): \
             run `.ci/install-libtorch.sh` and `source .ci/libtorch-env.sh`"
        );
    };
    let libtorch = Path::new(&libtorch);
    let lib = libtorch.join("lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // cudart/cupti, which libtorch_cpu.so needs even on CPU (.ci/install-libtorch.sh).
    if let Some(root) = libtorch.parent() {
        println!(
            "cargo:rustc-link-arg=-Wl,-rpath,{}",
            root.join("nvidia/cu13/lib").display()
        );
    }
    build_c10d_shim(libtorch);
}

fn build_c10d_shim(libtorch: &Path) {
    println!("cargo:rerun-if-changed=native/c10d/shim.cpp");
    println!("cargo:rerun-if-changed=native/third_party/gloo");
    let include = libtorch.join("include");
    cc::Build::new()
        .cpp(true)
        .file("native/c10d/shim.cpp")
        .std("c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("USE_C10D_GLOO", None)
        // libtorch's and gloo's headers are not ours to warn about
        .flag("-isystem")
        .flag(include.to_str().expect("LIBTORCH is UTF-8"))
        .flag("-isystem")
        .flag(
            include
                .join("torch/csrc/api/include")
                .to_str()
                .expect("LIBTORCH is UTF-8"),
        )
        .flag("-isystem")
        .flag("native/third_party/gloo")
        .opt_level(1)
        .compile("tb_c10d");
}
