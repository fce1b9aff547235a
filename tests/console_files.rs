//! Every theme and keymap that ships parses (unit tests in src/console), and every broken file
//! in tests/broken_console/ is refused with its path, line and column.

#![cfg(feature = "console")]

use std::path::Path;

use acp::console::{keymap, theme};

fn check(kind: &str, load: impl Fn(&str, &Path) -> Result<(), acp::console::ronfile::FileError>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/broken_console")
        .join(kind);
    let mut seen = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("// expect: ");
        let (position, message) = expect.split_once(' ').unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let config = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(config.path().join(kind)).unwrap();
        std::fs::copy(&path, config.path().join(kind).join(format!("{name}.ron"))).unwrap();
        let error = load(&name, config.path()).expect_err(&name);
        let shown = error.to_string();
        assert!(
            shown.contains(&format!("{kind}/{name}.ron:{position}: ")),
            "{name}: {shown}"
        );
        assert!(shown.contains(message), "{name}: {shown}");
        seen += 1;
    }
    assert!(seen >= 4, "the corpus is there");
}

#[test]
fn broken_themes_say_where() {
    check("themes", |name, dir| {
        theme::load(name, Some(dir)).map(|_| ())
    });
}

#[test]
fn broken_keymaps_say_where() {
    check("keymaps", |name, dir| {
        keymap::load(name, Some(dir)).map(|_| ())
    });
}
