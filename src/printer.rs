//! Where output goes. Data (tables, JSON, digests) goes to stdout; messages and
//! progress go to stderr. All command output goes through a [`Printer`] so that
//! `--quiet` is honoured in one place (clippy's `print_stdout` lint keeps stray
//! `println!` out of the crate).

use std::io::{self, Write};

/// How chatty the CLI is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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

    /// The data sink. Data is printed even with `--quiet`: it is what was
    /// asked for. A write that fails because the reader closed the pipe
    /// carries [`crate::error::StdoutClosed`], so `main` can tell it from
    /// any other broken pipe.
    pub fn stdout(&self) -> Stdout {
        Stdout(io::stdout().lock())
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

/// Our standard output, marking a closed pipe as [`crate::error::StdoutClosed`].
pub struct Stdout(io::StdoutLock<'static>);

fn mark_closed(error: io::Error) -> io::Error {
    if error.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, crate::error::StdoutClosed)
    } else {
        error
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark_closed)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark_closed)
    }
}
