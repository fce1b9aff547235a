//! `acp workflow validate`.

use std::path::PathBuf;
use std::process::ExitCode;

use acp::domain::parse_workflow;

/// Prints every problem of every file as `file:line:col: message`; exit code 1 if any.
pub fn validate(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        let source = match std::fs::read_to_string(file) {
            Ok(source) => source,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", file.display());
                failed = true;
                continue;
            }
        };
        match parse_workflow(&source) {
            Ok(workflow) => println!(
                "{}: ok ({}, {} steps)",
                file.display(),
                workflow.def.key,
                workflow.steps.len()
            ),
            Err(problems) => {
                failed = true;
                for problem in problems {
                    eprintln!("{}:{problem}", file.display());
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
