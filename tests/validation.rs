//! Workflow files: every shipped one is valid, every broken one in the corpus reports exactly
//! the problems its `// expect: line:col message` comments name.

use std::path::Path;
use std::process::Command;

use acp::domain::parse_workflow;

fn ron_files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_workflow_is_valid() {
    let files = ron_files("assets/workflows");
    assert!(files.len() >= 5);
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        if let Err(problems) = parse_workflow(&source) {
            panic!("{}: {problems:?}", file.display());
        }
    }
}

#[test]
fn broken_workflows_report_every_problem_with_its_position() {
    let files = ron_files("tests/broken_workflows");
    assert!(files.len() >= 10);
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<String> = source
            .lines()
            .filter_map(|l| l.strip_prefix("// expect: "))
            .map(str::to_owned)
            .collect();
        assert!(
            !expected.is_empty(),
            "{} names no expectation",
            file.display()
        );
        let problems = parse_workflow(&source).expect_err(&file.display().to_string());
        assert_eq!(
            problems.len(),
            expected.len(),
            "{}: {problems:#?}",
            file.display()
        );
        for (problem, expect) in problems.iter().zip(&expected) {
            let (position, message) = expect.split_once(' ').unwrap();
            assert_eq!(
                format!("{}:{}", problem.line, problem.col),
                position,
                "{}: {problem}",
                file.display()
            );
            assert!(
                problem.message.starts_with(message),
                "{}: `{}` should start with `{message}`",
                file.display(),
                problem.message
            );
        }
    }
}

#[test]
fn the_validate_command_prints_file_line_col_and_exits_1() {
    let acp = env!("CARGO_BIN_EXE_acp");
    let bad = Path::new("tests/broken_workflows/step_references.ron");
    let out = Command::new(acp)
        .args(["workflow", "validate"])
        .arg(bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("tests/broken_workflows/step_references.ron:10:60: `steps.later`"),
        "{stderr}"
    );

    let good = Command::new(acp)
        .args(["workflow", "validate", "assets/workflows/lead_routing.ron"])
        .output()
        .unwrap();
    assert_eq!(good.status.code(), Some(0));
    let missing = Command::new(acp)
        .args(["workflow", "validate", "nope.ron"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}
