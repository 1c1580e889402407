//! Dockerfiles read the way BuildKit's Dockerfile frontend reads them: the
//! first layer of the native compiler.
//!
//! [`parse`] turns the text into [`Instruction`]s with their lines, the way
//! `frontend/dockerfile/parser` in BuildKit v0.32.2 does: parser directives
//! (`syntax`, `escape`, `check`) at the top, comments, line continuations
//! (comment and empty lines inside them skipped), heredocs (`<<EOF`,
//! `<<-EOF`, quoted delimiters, several per instruction) for `RUN`, `COPY`
//! and `ADD`, leading `--flags`, and each instruction's argument form (JSON
//! or shell, key=value lists, `HEALTHCHECK`'s type, `ONBUILD`'s inner
//! instruction). [`Instruction::dump`] prints an instruction as BuildKit's
//! parser dumps its tree, which the tests compare with BuildKit's own
//! expected results.
//!
//! [`shell`] expands variables and splits words with the frontend's shell
//! lexer rules.
//!
//! [`instructions`] types each instruction (flags checked as the frontend
//! checks them), groups them into stages and says which stages a target
//! needs.
//!
//! [`lint`] is the frontend's linter (`--call check`), natively.
//!
//! [`compile`] turns the stages into an LLB graph and an image config the
//! way the daemon's frontend does; [`NativeFrontend`] runs it as a
//! client-side frontend of a build.

pub mod compile;
pub(crate) mod frontend;
pub mod instructions;
pub mod lint;
mod parser;
pub mod practices;
pub mod shell;
mod words;

pub use frontend::{Located, NativeFrontend, NativeMode};
pub use parser::{parse, Args, Dockerfile, Heredoc, Instruction, ParseError, Warning};
