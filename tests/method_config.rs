//! The `[method]` section: every kind parses, and bad values are clear errors.

use sculpt::method::MethodConfig;

#[derive(serde::Deserialize)]
struct Doc {
    method: MethodConfig,
}

fn parse(text: &str) -> Result<MethodConfig, String> {
    let doc: Doc = toml::from_str(text).map_err(|e| e.to_string())?;
    doc.method.validate().map_err(|e| e.to_string())?;
    Ok(doc.method)
}

#[test]
fn every_kind_parses_and_round_trips() {
    let docs = [
        "[method]\nkind = \"dense\"\n",
        "[method]\nkind = \"static\"\nsparsity = 0.9\n[method.pai]\nscore = \"snip\"\nbatch = 64\n",
        "[method]\nkind = \"cyclic\"\nsparsity = 0.8\ncycles = 3\nsplit = \"decreasing\"\n",
        "[method]\nkind = \"imp\"\nsparsity = 0.9\n",
        "[method]\nkind = \"wr\"\nsparsity = 0.9\nrewind_epoch = 2\n",
        "[method]\nkind = \"lrr\"\nsparsity = 0.9\nprune_rate = 0.3\n[method.scope]\nkeep_first_dense = true\n",
        "[method]\nkind = \"sculpt\"\nsparsity = 0.95\ninitial_sparsity = 0.5\ncycles = 2\n",
        "[method]\nkind = \"gmp\"\nsparsity = 0.9\nfrequency = 10\n",
        "[method]\nkind = \"acdc\"\nsparsity = 0.9\n",
        "[method]\nkind = \"dst\"\nsparsity = 0.9\ncriterion = \"mest\"\ngamma = 0.5\ngrowth = \"gradient\"\n",
    ];
    for d in docs {
        let m = parse(d).unwrap_or_else(|e| panic!("{d}: {e}"));
        let back = toml::to_string(&toml::Table::from_iter([(
            "method".to_string(),
            toml::Value::try_from(&m).unwrap(),
        )]))
        .unwrap();
        assert_eq!(parse(&back).unwrap(), m, "round trip of {d}");
        assert_eq!(
            m.with_sparsity(0.5).sparsity(),
            if m.kind() == "dense" { 0.0 } else { 0.5 }
        );
    }
}

fn err(text: &str) -> String {
    parse(text).expect_err(text)
}

#[test]
fn bad_method_sections_are_clear_errors() {
    let e = err("[method]\nkind = \"magic\"\n");
    assert!(e.contains("magic") && e.contains("unknown variant"), "{e}");
    let e = err("[method]\nkind = \"static\"\nsparsity = 0.9\nspeed = 3\n");
    assert!(e.contains("speed"), "{e}");
    let e = err("[method]\nkind = \"dense\"\nsparsity = 0.9\n");
    assert!(e.contains("sparsity"), "{e}");
    let e = err("[method]\nkind = \"static\"\nsparsity = 1.0\n");
    assert!(e.contains("sparsity") && e.contains("[0, 1)"), "{e}");
    let e = err("[method]\nkind = \"imp\"\nsparsity = -0.1\n");
    assert!(e.contains("[0, 1)"), "{e}");
    let e =
        err("[method]\nkind = \"sculpt\"\nsparsity = 0.8\ninitial_sparsity = 0.9\ncycles = 2\n");
    assert!(
        e.contains("initial_sparsity") && e.contains("above the target"),
        "{e}"
    );
    let e = err("[method]\nkind = \"cyclic\"\nsparsity = 0.8\ncycles = 0\n");
    assert!(e.contains("cycles"), "{e}");
    let e = err("[method]\nkind = \"dst\"\nsparsity = 0.8\ncriterion = \"psychic\"\n");
    assert!(e.contains("psychic"), "{e}");
    let e = err(
        "[method]\nkind = \"static\"\nsparsity = 0.8\n[method.pai]\nscore = \"snip\"\nrounds = 3\n",
    );
    assert!(e.contains("rounds"), "{e}");
    let e = err("[method]\nkind = \"wr\"\nsparsity = 0.8\nrewind_epoch = 0\n");
    assert!(e.contains("rewind_epoch"), "{e}");
    let e =
        err("[method]\nkind = \"lrr\"\nsparsity = 0.8\n[method.scope]\nkeep_middle_dense = true\n");
    assert!(e.contains("keep_middle_dense"), "{e}");
}
