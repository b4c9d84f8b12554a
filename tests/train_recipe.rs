//! Recipe parsing: the documented example, defaults, overrides and every kind of bad input.

use std::path::Path;

use sculpt::data::DataSource;
use sculpt::method::MethodConfig;
use sculpt::optim::schedule::Shape;
use sculpt::train::{Override, Recipe};

fn example_from_spec() -> String {
    let spec =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("formats/recipe.md"))
            .unwrap();
    let start = spec
        .find("## Example")
        .expect("spec has an example section");
    let rest = &spec[start..];
    let a = rest.find("```toml").expect("example is a toml block") + "```toml".len();
    let b = a + rest[a..].find("```").expect("example block is closed");
    rest[a..b].to_string()
}

fn err_of(text: &str) -> String {
    Recipe::from_toml_str(text, "test.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn the_documented_example_parses_to_what_it_says() {
    let r = Recipe::from_toml_str(&example_from_spec(), "formats/recipe.md").unwrap();
    assert_eq!(r.model.name, "lenet5");
    assert_eq!(r.data.source, DataSource::Embedded);
    assert_eq!(r.data.validation, 0.1);
    assert_eq!(r.data.augment.crop_padding, 2);
    assert_eq!(r.train.epochs, 4);
    assert_eq!(r.train.batch_size, 64);
    assert_eq!(r.train.seed, 7);
    assert_eq!(r.optimizer.momentum, 0.9);
    assert_eq!(r.optimizer.weight_decay, 5e-4);
    assert_eq!(r.schedule.lr, 0.05);
    assert_eq!(r.schedule.shape, Shape::Cosine { min_lr: 0.0 });
    assert_eq!(r.method, MethodConfig::Dense);
    let back = Recipe::from_toml_str(&r.to_toml().unwrap(), "round trip").unwrap();
    assert_eq!(back, r);
}

#[test]
fn empty_recipe_is_the_default() {
    assert_eq!(
        Recipe::from_toml_str("", "empty.toml").unwrap(),
        Recipe::default()
    );
    let d = Recipe::default();
    assert_eq!(d.model.name, "lenet5");
    assert_eq!(d.method, MethodConfig::Dense);
}

#[test]
fn unknown_keys_are_named() {
    let e = err_of("[train]\nepochz = 3\n");
    assert!(e.contains("epochz") && e.contains("test.toml"), "{e}");
    let e = err_of("[trian]\nepochs = 3\n");
    assert!(e.contains("trian"), "{e}");
    let e = err_of("[data]\naugment = { crop_padding = 4, hflip = false, vflip = true }\n");
    assert!(e.contains("vflip"), "{e}");
    let e = err_of("[optimizer]\nmomentun = 0.9\n");
    assert!(e.contains("momentun"), "{e}");
}

#[test]
fn bad_values_are_named() {
    for (text, needle) in [
        ("[train]\nbatch_size = 0\n", "batch_size"),
        ("[train]\nepochs = 0\n", "epochs"),
        ("[train]\nlabel_smoothing = 1.5\n", "label_smoothing"),
        ("[train]\neval_every = 0\n", "eval_every"),
        ("[data]\nvalidation = 1.0\n", "validation"),
        ("[optimizer]\nmomentum = 1.0\n", "momentum"),
        ("[optimizer]\nweight_decay = -1.0\n", "weight_decay"),
        (
            "[schedule]\nlr = -0.1\nshape = \"constant\"\n",
            "learning rate",
        ),
        ("[schedule]\nshape = \"constant\"\nmin_lr = 0.1\n", "min_lr"),
        ("[schedule]\nshape = \"zigzag\"\n", "zigzag"),
        (
            "[schedule]\nlr = 0.1\nshape = \"cosine\"\nwarmup = 2.0\n",
            "warmup",
        ),
        ("[train]\nbatch_size = \"big\"\n", "batch_size"),
        ("[train]\nepochs = -3\n", "epochs"),
    ] {
        let e = err_of(text);
        assert!(e.contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn unknown_model_and_method_are_named() {
    let e = err_of("[model]\nname = \"alexnet\"\n");
    assert!(e.contains("alexnet") && e.contains("model"), "{e}");
    let e = err_of("[method]\nkind = \"telepathy\"\n");
    assert!(e.contains("telepathy"), "{e}");
    let e = err_of("[data]\nsource = { kind = \"imagenet\" }\n");
    assert!(e.contains("imagenet"), "{e}");
}

#[test]
fn syntax_errors_and_missing_files_name_the_file() {
    let e = err_of("[train\nepochs = 3\n");
    assert!(e.contains("test.toml"), "{e}");
    let e = Recipe::load(Some(Path::new("/nonexistent/dir/missing.toml")), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.toml"), "{e}");
}

#[test]
fn overrides_apply_on_top_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.toml");
    std::fs::write(&path, example_from_spec()).unwrap();
    let o = [
        Override::parse("train.epochs=9").unwrap(),
        Override::parse("schedule.shape=constant").unwrap(),
        Override::new("data.source", {
            let mut t = toml::Table::new();
            t.insert("kind".into(), "idx".into());
            t.insert("dir".into(), "/data/fashion".into());
            toml::Value::Table(t)
        }),
    ];
    // The file's cosine schedule has a min_lr, which shape constant does not know: the clash is named ...
    let e = Recipe::load(Some(&path), &o).unwrap_err().to_string();
    assert!(e.contains("min_lr"), "{e}");
    // ... and replacing the whole table works.
    let o = [
        o[0].clone(),
        Override::parse("schedule={ lr = 0.1, shape = \"constant\" }").unwrap(),
        o[2].clone(),
    ];
    let r = Recipe::load(Some(&path), &o).unwrap();
    assert_eq!(r.train.epochs, 9);
    assert_eq!(r.train.batch_size, 64);
    assert_eq!(r.schedule.shape, Shape::Constant);
    assert_eq!(
        r.data.source,
        DataSource::Idx {
            dir: "/data/fashion".into()
        }
    );
}
