//! Target files load, malformed ones are errors naming the file, and a budget overflow says by how much.

mod common_scb;

use std::path::Path;

use sculpt::compile::target::{Footprint, Target};

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/targets"))
}

#[test]
fn shipped_targets_load() {
    let all = Target::load_all(dir()).unwrap();
    let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "aarch64-linux",
            "cortex-m0plus",
            "cortex-m4f",
            "cortex-m7",
            "host-x86_64"
        ]
    );
    let m4 = Target::load_named(dir(), "cortex-m4f").unwrap();
    assert_eq!((m4.flash_bytes, m4.ram_bytes), (1 << 20, 192 * 1024));
}

#[test]
fn malformed_target_is_an_error_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.toml");
    std::fs::write(&p, "name = \"x\"\nflash_bytes = \"lots\"\n").unwrap();
    let e = Target::load(&p).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("flash_bytes"), "{e}");
    let good = std::fs::read_to_string(dir().join("cortex-m7.toml")).unwrap();
    std::fs::write(&p, good.replace("alignment = 32", "alignment = 24")).unwrap();
    assert!(Target::load(&p)
        .unwrap_err()
        .to_string()
        .contains("power of two"));
    std::fs::write(&p, good.replace("\"rice\"]", "\"rice\", \"zip\"]")).unwrap();
    assert!(Target::load(&p).is_err());
}

#[test]
fn budget_overflow_is_reported_with_the_excess() {
    let bytes = common_scb::small_resnet(common_scb::Kind::F32, 1.0, 3)
        .to_bytes()
        .unwrap();
    let need = Footprint::of_scb(&bytes).unwrap();
    let mut t = Target::load_named(dir(), "cortex-m4f").unwrap();
    t.check("model.scb", &need).unwrap();
    t.flash_bytes = need.flash_bytes - 100;
    t.ram_bytes = need.ram_bytes - 16;
    let e = t.check("model.scb", &need).unwrap_err().to_string();
    assert!(
        e.contains("over by 100 bytes") && e.contains("over by 16 bytes"),
        "{e}"
    );
    assert!(t.report("model.scb", &need).contains("cortex-m4f"));
}
