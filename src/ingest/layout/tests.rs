use super::*;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden/runs")
        .join(name)
}

#[test]
fn detects_golden_layouts() {
    if !golden("torchtune-lora-qwen2").is_dir() {
        return;
    }
    assert_eq!(
        detect(&golden("torchtune-lora-qwen2")).unwrap(),
        Format::Torchtune
    );
    if golden("axolotl-lora-llama/trainer_state.json").is_file() {
        assert_eq!(detect(&golden("axolotl-lora-llama")).unwrap(), Format::Hf);
    }
}

#[test]
fn axolotl_precision_keys() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("config.yaml");
    for (yaml, want) in [
        ("bf16: auto\n", Some(Precision::Bf16)),
        ("bf16: true\ntf32: true\n", Some(Precision::Bf16)),
        ("fp16: true\n", Some(Precision::Fp16)),
        ("bf16: false\ntf32: true\n", Some(Precision::Tf32)),
        ("bf16: false\nfp16: false\n", Some(Precision::Fp32)),
        ("base_model: x\n", None),
    ] {
        std::fs::write(&p, yaml).unwrap();
        assert_eq!(axolotl_precision(&p).unwrap(), want, "{yaml}");
    }
}

#[test]
fn tunebridge_precision_from_the_ir() {
    let doc: toml::Value =
        toml::from_str("[precision]\ncompute_dtype = \"fp32\"\ntf32 = true\n").unwrap();
    assert_eq!(find_toml_precision(&doc), Some(Precision::Tf32));
    let doc: toml::Value = toml::from_str("[precision]\ncompute_dtype = \"bf16\"\n").unwrap();
    assert_eq!(find_toml_precision(&doc), Some(Precision::Bf16));
}

#[test]
fn pickled_file_is_unsupported() {
    let e = detect(Path::new("x/adapter_model.pt")).unwrap_err();
    assert!(e.to_string().contains("safetensors only"), "{e}");
}
