//! `thespian render`: the committed renderings of the sample ecosystem are
//! what their headers' commands render, and `--check` fails once a
//! rendered file is changed or missing.

use std::{
    path::Path,
    process::{Command, Output},
};

/// The repository's root, where the renderings and their ecosystem are.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The committed renderings, by the file whose header names the command.
const RENDERED: [&str; 2] = [
    "deploy/compose/docker-compose.yaml",
    "deploy/kubernetes/base/kustomization.yaml",
];

/// Runs `thespian` with `args` in the repository's root.
fn thespian(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_thespian"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap()
}

/// The arguments of the command in the header of `file`, without
/// `thespian`: the lines between the first and the one that says to edit
/// the ecosystem file, their `#` and line-continuing `\` taken off.
fn header_command(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
    let words: Vec<String> = text
        .lines()
        .skip(1)
        .take_while(|line| !line.starts_with("# Edit"))
        .flat_map(|line| {
            line.trim_start_matches('#')
                .trim_end_matches('\\')
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(words[..2], ["thespian", "render"], "{file}: {words:?}");
    words[1..].to_vec()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_committed_renderings_are_up_to_date() {
    for file in RENDERED {
        let mut args = header_command(file);
        args.push("--check".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = thespian(&args);
        assert!(output.status.success(), "{file}: {}", stderr(&output));
    }
}

#[test]
fn check_fails_once_a_rendered_file_changes_or_goes() {
    for file in RENDERED {
        let out = tempfile::tempdir().unwrap();
        let out_dir = out.path().to_str().unwrap();
        let mut args = header_command(file);
        let at = args.iter().position(|a| a == "--out").unwrap();
        args[at + 1] = out_dir.to_owned();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(thespian(&args).status.success());
        let check = [&args[..], &["--check"]].concat();
        assert!(thespian(&check).status.success());

        let rendered = out.path().join(Path::new(file).file_name().unwrap());
        let text = std::fs::read_to_string(&rendered).unwrap();
        std::fs::write(&rendered, format!("{text}# an edit by hand\n")).unwrap();
        let output = thespian(&check);
        assert!(!output.status.success(), "{file}: a changed file passed");
        assert!(
            stderr(&output).contains(&rendered.display().to_string()),
            "{}",
            stderr(&output)
        );

        std::fs::remove_file(out.path().join("configs/orders.jsonc")).unwrap();
        std::fs::write(&rendered, text).unwrap();
        let output = thespian(&check);
        assert!(!output.status.success(), "{file}: a missing file passed");
        assert!(
            stderr(&output).contains("orders.jsonc"),
            "{}",
            stderr(&output)
        );
    }
}
