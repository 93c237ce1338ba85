//! With the `engine` feature, record libtorch's library folder in the binaries' run path, so
//! `tunebridge` (and the test binaries) start without LD_LIBRARY_PATH on the machine that
//! built them. LD_LIBRARY_PATH still wins where it is set (the GPU machines, docs/ENGINE-BUILD.md).

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_ENGINE").is_none() {
        return;
    }
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&libtorch).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        // cudart/cupti, which libtorch_cpu.so needs even on CPU (.ci/install-libtorch.sh).
        if let Some(root) = std::path::Path::new(&libtorch).parent() {
            println!(
                "cargo:rustc-link-arg=-Wl,-rpath,{}",
                root.join("nvidia/cu13/lib").display()
            );
        }
    }
}
