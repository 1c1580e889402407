//! `bake`: many builds described in one or more files (compose files,
//! `docker-bake.hcl`, `docker-bake.json`), resolved into one build request
//! per target and run together on one connection.
//!
//! The flow: [`files`] finds and reads the files (each format in its own
//! module: [`compose`], [`hcl`]) into a [`Definition`] of targets, groups and
//! variables; [`resolve`] merges the files in buildx's order, expands groups,
//! applies `inherits` and `--set`, and orders targets so that one used as
//! another's context (`target:NAME`) comes first; [`plan`] turns each
//! resolved [`Target`] into a [`crate::build::BuildRequest`]; [`run`] runs
//! them concurrently with [`crate::build::build`], each feeding a
//! [`progress::TargetSink`] that labels its steps. The CLI (`cli/bake.rs`)
//! owns the flags, printing, `--metadata-file` and exit codes.

pub(crate) mod compose;
pub(crate) mod entitlements;
pub(crate) mod files;
#[cfg(test)]
mod fuzz;
pub(crate) mod hcl;
pub(crate) mod hcl_stdlib;
mod hcl_vars;
mod link;
pub(crate) mod merge_keys;
pub(crate) mod plan;
pub(crate) mod pool;
pub(crate) mod progress;
pub(crate) mod resolve;
pub(crate) mod run;
pub(crate) mod target;
pub(crate) mod userfunc;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

pub(crate) use target::Target;

/// What one file (or several, merged) says: targets and groups in the order
/// they were declared, variables with their values, and warnings about keys
/// that were ignored.
#[derive(Debug, Default, Clone)]
pub(crate) struct Definition {
    /// Read freely; added to only through [`Definition::add_target`], which
    /// keeps `target_index` in step.
    pub(crate) targets: Vec<(String, Target)>,
    /// Added to only through [`Definition::add_group`].
    pub(crate) groups: Vec<(String, Vec<String>)>,
    /// Where each name is in `targets` and `groups`: a matrix defines tens
    /// of thousands of targets, and a search of the list for each was
    /// quadratic.
    target_index: HashMap<String, usize>,
    group_index: HashMap<String, usize>,
    /// Variables and their resolved values (`--list variables`).
    pub(crate) variables: Vec<Variable>,
    /// Whether an HCL or JSON file was read (compose files have no
    /// variables, and buildx lists theirs as `null`, not `[]`).
    pub(crate) has_variable_files: bool,
    pub(crate) warnings: Vec<String>,
}

/// A bake file variable, as `--list variables` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Variable {
    pub(crate) name: String,
    // buildx's field order: name, description, (type,) value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    /// go-cty's name of the declared type (`list of string`), if any.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<String>,
}

impl Definition {
    /// Adds a target, merging it into an earlier one of the same name (a
    /// target may be declared in several blocks or files).
    pub(crate) fn add_target(&mut self, name: String, target: Target) {
        match self.target_index.get(&name) {
            Some(&at) => self.targets[at].1.merge(&target),
            None => {
                self.target_index.insert(name.clone(), self.targets.len());
                self.targets.push((name, target));
            }
        }
    }

    /// Adds a group; a group declared again gains the new members.
    pub(crate) fn add_group(&mut self, name: String, members: Vec<String>) {
        match self.group_index.get(&name) {
            Some(&at) => {
                let existing = &mut self.groups[at].1;
                let mut seen: HashSet<String> = existing.iter().cloned().collect();
                for member in members {
                    if seen.insert(member.clone()) {
                        existing.push(member);
                    }
                }
            }
            None => {
                self.group_index.insert(name.clone(), self.groups.len());
                self.groups.push((name, members));
            }
        }
    }

    /// Layers a later file on top of this one.
    pub(crate) fn merge(&mut self, later: Definition) {
        for (name, target) in later.targets {
            self.add_target(name, target);
        }
        for (name, members) in later.groups {
            self.add_group(name, members);
        }
        // A later file's variable replaces an earlier one of the same name
        // and goes last; within a file, the last of a name counts.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, variable) in later.variables.iter().enumerate() {
            last.insert(&variable.name, i);
        }
        self.variables.retain(|v| !last.contains_key(v.name.as_str()));
        let keep: HashSet<usize> = last.into_values().collect();
        self.variables
            .extend(later.variables.into_iter().enumerate().filter(|(i, _)| keep.contains(i)).map(|(_, v)| v));
        self.has_variable_files |= later.has_variable_files;
        self.warnings.extend(later.warnings);
    }

    pub(crate) fn target(&self, name: &str) -> Option<&Target> {
        self.target_index.get(name).map(|&at| &self.targets[at].1)
    }

    pub(crate) fn group(&self, name: &str) -> Option<&[String]> {
        self.group_index.get(name).map(|&at| self.groups[at].1.as_slice())
    }
}

/// Why a bake cannot start. Every variant names the file, target or flag
/// at fault; nothing has been sent to the daemon yet.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BakeError {
    #[error("cannot read the bake file {path:?}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no bake file in {dir:?} (looked for {})", files::DEFAULT_FILES.join(", "))]
    NoFiles { dir: PathBuf },
    /// A file that does not parse, or a value that cannot be used;
    /// `location` is `FILE:LINE[:COLUMN]` when the line is known, else the
    /// file and the target.
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
    /// A value an attribute cannot take; `what` names the block and the
    /// attribute (`target "app": tags`, `build.args`).
    #[error("{location}: {what}: {reason}")]
    Value { location: String, what: String, reason: Box<ValueProblem> },
    #[error("unknown target or group {name:?} (the files define: {known})")]
    UnknownTarget { name: String, known: String },
    #[error("nothing to build: {0} names no target")]
    NothingToBuild(String),
    #[error("targets depend on each other in a cycle: {0}")]
    Cycle(String),
    #[error("--set {value:?}: {reason}")]
    Set { value: String, reason: SetProblem },
    #[error("target {target:?}: {reason}")]
    Target { target: String, reason: String },
    #[error("--allow {value:?}: {reason}")]
    Allow { value: String, reason: String },
    /// What the targets need and `--allow` did not grant (buildx's words);
    /// `lines` say what each grant is for.
    #[error("additional privileges requested: pass {flags:?} to grant requested privileges")]
    Privileges { lines: Vec<String>, flags: String },
}

/// Why a value in a bake or compose file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ValueProblem {
    #[error(transparent)]
    Hcl(#[from] hcl::ValueError),
    #[error(transparent)]
    Compose(#[from] compose::ComposeValueError),
    #[error(transparent)]
    Variable(#[from] hcl_vars::VariableError),
}

/// What is wrong with one `--set` value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetProblem {
    #[error("expected TARGET.KEY=VALUE")]
    Form,
    #[error("{0} does not support append (+=)")]
    NoAppend(String),
    #[error("could not find any target matching '{0}'")]
    NoTarget(String),
    #[error(transparent)]
    Attribute(#[from] target::AttributeError),
}

/// Values of the process environment, and the `.env` file's, by name.
pub(crate) type Env = BTreeMap<String, String>;
