//! With the `engine` feature:
//! - record libtorch's library folder in the binaries' run path, so `tunebridge` (and the test
//!   binaries) start without LD_LIBRARY_PATH on the machine that built them. LD_LIBRARY_PATH
//!   still wins where it is set (the GPU machines, docs/ENGINE-BUILD.md);
//! - compile `native/c10d/shim.cpp`, the C interface to libtorch's own c10d (TCPStore,
//!   ProcessGroupGloo) that `src/engine/dist/` calls, against the same libtorch headers;
//! - when `TUNEBRIDGE_NCCL_INCLUDE` names the CUDA and NCCL header folders (`:`-separated),
//!   also build `libtb_c10d_nccl.so` (native/c10d/nccl.cpp, ProcessGroupNCCL) next to the
//!   binaries, which CUDA ranks load at run time (docs/ENGINE-BUILD.md, "NCCL"). Without it the
//!   binary is the same and CUDA ranks say which library is missing.

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
    println!("cargo:rerun-if-env-changed=TUNEBRIDGE_NCCL_INCLUDE");
    if let Ok(dirs) = std::env::var("TUNEBRIDGE_NCCL_INCLUDE") {
        build_nccl_shim(libtorch, &dirs);
    }
}

/// `libtb_c10d_nccl.so` in the profile folder (`target/<profile>/`, beside the binary). Its
/// libtorch_cuda/NCCL symbols stay undefined: they resolve against the libtorch_cuda.so the
/// engine has loaded with RTLD_GLOBAL when it opens this library.
fn build_nccl_shim(libtorch: &Path, include_dirs: &str) {
    println!("cargo:rerun-if-changed=native/c10d/nccl.cpp");
    println!("cargo:rerun-if-changed=native/c10d/handles.hpp");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR = target/<profile>/build/<pkg>-<hash>/out
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is inside target/<profile>");
    let include = libtorch.join("include");
    let compiler = cc::Build::new().cpp(true).get_compiler();
    let mut cmd = compiler.to_command();
    cmd.args([
        "-std=c++17",
        "-shared",
        "-fPIC",
        "-O1",
        "-D_GLIBCXX_USE_CXX11_ABI=1",
    ])
    .args(["-DUSE_C10D_NCCL", "-DUSE_CUDA"])
    .arg("-isystem")
    .arg(&include)
    .arg("-isystem")
    .arg(include.join("torch/csrc/api/include"));
    for dir in include_dirs.split(':').filter(|d| !d.is_empty()) {
        cmd.arg("-isystem").arg(dir);
    }
    let lib = profile_dir.join("libtb_c10d_nccl.so");
    cmd.arg("native/c10d/nccl.cpp").arg("-o").arg(&lib);
    let status = cmd.status().expect("the C++ compiler runs");
    assert!(
        status.success(),
        "building {} failed: TUNEBRIDGE_NCCL_INCLUDE must hold the CUDA runtime, cuBLAS, \
         cuSPARSE, cuSOLVER, CCCL and NCCL headers that libtorch's ProcessGroupNCCL.hpp includes",
        lib.display()
    );
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
