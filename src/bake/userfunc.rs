//! User-defined HCL functions (`function "NAME" { params = [a, b]
//! variadic_params = rest  result = ... }`), as buildx has them.
//!
//! hcl-rs calls functions through plain `fn` pointers, which cannot carry a
//! function's body. So the functions of the file being evaluated live in a
//! thread-local table while [`install`]'s guard is held (evaluation is
//! synchronous, on the caller's thread), and each is declared to the
//! evaluator through one of a fixed set of trampolines that knows only its
//! slot number. Bodies may use the file's variables, the standard
//! functions and other user functions (also recursively).

use std::cell::RefCell;

use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};
use hcl::{Expression, Value};

/// One `function` block.
#[derive(Debug, Clone)]
pub(crate) struct UserFunc {
    pub(crate) name: String,
    pub(crate) params: Vec<String>,
    pub(crate) variadic: Option<String>,
    pub(crate) result: Expression,
}

/// Why a `function` block cannot be used (the caller adds file and line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FunctionError {
    #[error("params must be bare names, e.g. params = [name, tag]")]
    NotAName,
    #[error("params must be a list of names")]
    NotAList,
    #[error("unknown attribute {0:?}")]
    UnknownAttribute(String),
    #[error("a function needs a result")]
    NoResult,
    #[error("at most {} user-defined functions are supported", TRAMPOLINES.len())]
    TooMany,
}

impl UserFunc {
    /// Reads a block's attributes.
    pub(crate) fn from_attrs(name: &str, attrs: &[(String, Expression)]) -> Result<UserFunc, FunctionError> {
        let ident = |e: &Expression| match e {
            Expression::Variable(v) => Ok(v.as_str().to_string()),
            _ => Err(FunctionError::NotAName),
        };
        let mut function =
            UserFunc { name: name.to_string(), params: Vec::new(), variadic: None, result: Expression::Null };
        let mut has_result = false;
        for (key, expr) in attrs {
            match key.as_str() {
                "params" => match expr {
                    Expression::Array(items) => function.params = items.iter().map(ident).collect::<Result<_, _>>()?,
                    _ => return Err(FunctionError::NotAList),
                },
                "variadic_params" => function.variadic = Some(ident(expr)?),
                "result" => {
                    function.result = expr.clone();
                    has_result = true;
                }
                other => return Err(FunctionError::UnknownAttribute(other.to_owned())),
            }
        }
        if !has_result {
            return Err(FunctionError::NoResult);
        }
        Ok(function)
    }
}

thread_local! {
    static FUNCTIONS: RefCell<Vec<UserFunc>> = const { RefCell::new(Vec::new()) };
    static VARIABLES: RefCell<Vec<(String, Value)>> = const { RefCell::new(Vec::new()) };
}

/// Clears the table when evaluation of a file ends.
pub(crate) struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        FUNCTIONS.with(|f| f.borrow_mut().clear());
        VARIABLES.with(|v| v.borrow_mut().clear());
    }
}

/// Makes `functions` callable by [`declare`]d contexts until the guard drops.
pub(crate) fn install(functions: Vec<UserFunc>) -> Result<Installed, FunctionError> {
    if functions.len() > TRAMPOLINES.len() {
        return Err(FunctionError::TooMany);
    }
    FUNCTIONS.with(|f| *f.borrow_mut() = functions);
    Ok(Installed(()))
}

/// The file's variables, for function bodies (once they are known).
pub(crate) fn set_variables(variables: Vec<(String, Value)>) {
    VARIABLES.with(|v| *v.borrow_mut() = variables);
}

/// Declares the installed functions in `ctx`.
pub(crate) fn declare(ctx: &mut Context<'static>) {
    FUNCTIONS.with(|f| {
        for (slot, function) in f.borrow().iter().enumerate() {
            ctx.declare_func(
                function.name.clone(),
                FuncDef::builder().variadic_param(ParamType::Any).build(TRAMPOLINES[slot]),
            );
        }
    });
}

/// How deeply user functions may call each other (or themselves): a
/// function that calls itself without end would otherwise overflow the
/// stack and abort the process. Generous for real files, whose functions
/// call a few others.
const MAX_CALL_DEPTH: usize = 32;

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts one level of user function calls while held.
struct Level;

impl Level {
    fn enter() -> Option<Level> {
        DEPTH.with(|d| (d.get() < MAX_CALL_DEPTH).then(|| d.set(d.get() + 1)).map(|()| Level))
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

fn call(slot: usize, args: FuncArgs) -> Result<Value, String> {
    let function = FUNCTIONS.with(|f| f.borrow().get(slot).cloned()).ok_or("user function table is empty")?;
    let Some(_level) = Level::enter() else {
        return Err(format!(
            "{}: user functions call each other more than {MAX_CALL_DEPTH} deep (does it call itself without end?)",
            function.name
        ));
    };
    let args = args.into_values();
    let fixed = function.params.len();
    if args.len() < fixed || (function.variadic.is_none() && args.len() > fixed) {
        return Err(format!(
            "{} takes {fixed} argument{}, got {}",
            function.name,
            if fixed == 1 { "" } else { "s" },
            args.len()
        ));
    }
    let mut ctx = super::hcl::context();
    VARIABLES.with(|v| {
        for (name, value) in v.borrow().iter() {
            ctx.declare_var(name.clone(), value.clone());
        }
    });
    for (name, value) in function.params.iter().zip(&args) {
        ctx.declare_var(name.clone(), value.clone());
    }
    if let Some(rest) = &function.variadic {
        ctx.declare_var(rest.clone(), Value::Array(args[fixed..].to_vec()));
    }
    super::hcl_stdlib::lazy::evaluate(&function.result, &ctx).map_err(|e| format!("{}: {e}", function.name))
}

macro_rules! trampolines {
    ($($slot:literal => $name:ident),* $(,)?) => {
        $(fn $name(args: FuncArgs) -> Result<Value, String> { call($slot, args) })*
        const TRAMPOLINES: &[hcl::eval::Func] = &[$($name),*];
    };
}

trampolines! {
    0 => f0, 1 => f1, 2 => f2, 3 => f3, 4 => f4, 5 => f5, 6 => f6, 7 => f7,
    8 => f8, 9 => f9, 10 => f10, 11 => f11, 12 => f12, 13 => f13, 14 => f14, 15 => f15,
    16 => f16, 17 => f17, 18 => f18, 19 => f19, 20 => f20, 21 => f21, 22 => f22, 23 => f23,
    24 => f24, 25 => f25, 26 => f26, 27 => f27, 28 => f28, 29 => f29, 30 => f30, 31 => f31,
}
