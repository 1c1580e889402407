//! Where output goes. Data (tables, JSON, digests) goes to stdout; messages and
//! progress go to stderr. All command output goes through a [`Printer`] so that
//! `--quiet` is honoured in one place (clippy's `print_stdout` lint keeps stray
//! `println!` out of the crate).

use std::io::{self, Write};

/// How chatty the CLI is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// Hands out the sinks for data (stdout) and messages (stderr).
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub verbosity: Verbosity,
}

impl Printer {
    pub fn new(verbosity: Verbosity) -> Self {
        Self { verbosity }
    }

    /// The data sink. Data is printed even with `--quiet`: it is what was asked for.
    pub fn stdout(&self) -> io::StdoutLock<'static> {
        io::stdout().lock()
    }

    /// The message sink; swallows everything in quiet mode.
    pub fn stderr(&self) -> Box<dyn Write> {
        match self.verbosity {
            Verbosity::Quiet => Box::new(io::sink()),
            _ => Box::new(io::stderr()),
        }
    }

    pub fn is_verbose(&self) -> bool {
        self.verbosity == Verbosity::Verbose
    }
}
