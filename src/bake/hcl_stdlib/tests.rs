//! Error cases (each names its function), results that change on every
//! call (checked by shape), and what the buildx corpus cannot hold
//! (tests/bake/functions has the values).

use hcl::{Expression, Value};

fn eval(src: &str) -> Result<Value, String> {
    let expr: Expression = src.parse().map_err(|e| format!("parse {src}: {e}"))?;
    let ctx = crate::bake::hcl::context();
    super::lazy::evaluate(&expr, &ctx)
}

fn ok(src: &str) -> Value {
    eval(src).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn text(src: &str) -> String {
    match ok(src) {
        Value::String(s) => s,
        other => panic!("{src}: not a string: {other:?}"),
    }
}

/// The error of `src`, which must name `function`.
fn error(src: &str, function: &str, detail: &str) {
    let err = eval(src).err().unwrap_or_else(|| panic!("{src}: no error"));
    assert!(err.contains(&format!("`{function}`")), "{src}: {err:?} does not name {function}");
    assert!(err.contains(detail), "{src}: {err:?} does not say {detail:?}");
}

#[test]
fn every_buildx_function_is_declared() {
    // bake/hclparser/stdlib.go in buildx v0.38.2, in its order.
    let buildx = "absolute add and base64decode base64encode basename bcrypt byteslen bytesslice can ceil chomp \
        chunklist cidrhost cidrnetmask cidrsubnet cidrsubnets coalesce coalescelist compact concat contains convert \
        csvdecode dirname distinct divide element equal flatten floor format formatdate formattimestamp formatlist \
        greaterthan greaterthanorequalto hasindex homedir indent index indexof int join jsondecode jsonencode keys \
        length lessthan lessthanorequalto log lookup lower max md5 merge min modulo multiply negate not notequal or \
        parseint pow range regex_replace regex regexall replace reverse reverselist rsadecrypt sanitize semvercmp \
        sethaselement setintersection setproduct setsubtract setsymmetricdifference setunion sha1 sha256 sha512 \
        signum slice sort split strlen substr subtract timeadd timestamp title trim trimprefix trimspace trimsuffix \
        try unixtimestampparse upper urlencode uuidv4 uuidv5 values zipmap";
    let ours: Vec<&str> = super::names().collect();
    let theirs: Vec<&str> = buildx.split_whitespace().collect();
    assert_eq!(ours, theirs);
}

#[test]
fn arity_errors_name_the_function() {
    error("md5()", "md5", "expected 1 positional arguments, got 0");
    error("upper(\"a\", \"b\")", "upper", "expected 1 positional arguments, got 2");
    error("lookup({a = 1}, \"a\")", "lookup", "expected 3 positional arguments, got 2");
    error("timestamp(1)", "timestamp", "expected 0 positional arguments, got 1");
    error("join(\",\")", "join", "at least one list is required");
    error("max()", "max", "must pass at least one number");
    error("can(1, 2)", "can", "expected 1 positional argument, got 2");
    error("try()", "try", "at least one argument is required");
    error("convert(1)", "convert", "expected 2 positional arguments, got 1");
    error("setproduct([1])", "setproduct", "at least two arguments are required");
}

#[test]
fn type_errors_name_the_function() {
    error("upper([\"a\"])", "upper", "a string is required, got list");
    error("upper(null)", "upper", "must not be null");
    error("add(1, \"x\")", "add", "argument 2: a number is required, got the string \"x\"");
    error("and(true, 1)", "and", "a bool is required, got number");
    error("length(\"abc\")", "length", "collection must be a list, a map or a tuple");
    error("length({a = 1})", "length", "use length(keys(...))");
    error("keys([1])", "keys", "must have map or object type");
    error("merge({a = 1}, [1])", "merge", "arguments must be maps or objects");
    error("parseint(12, 10)", "parseint", "first argument must be a string, not number");
    error("parseint(\"12\", 1)", "parseint", "base must be a whole number between 2 and 62");
    error("parseint(\"xyz\", 10)", "parseint", "cannot parse \"xyz\" as a base 10 integer");
    error("signum(1.5)", "signum", "a whole number is required");
    error("coalescelist(null, [1])", "coalescelist", "must be lists or tuples");
    error("hasindex({a = 1}, \"a\")", "hasindex", "collection must be a list");
    error("byteslen(\"abc\")", "byteslen", "bytes required");
    error("convert([1], number)", "convert", "number required, got list");
    error("convert(1, nosuchtype)", "convert", "invalid type constraint");
    error("convert([true, 1], list(any))", "convert", "all list elements must have the same type");
    error("distinct([[1], {a = 1}])", "distinct", "all list elements must have the same type");
    error("setunion([true], [1])", "setunion", "all list elements must have the same type");
}

#[test]
fn value_errors_name_the_function() {
    error("regex(\"[0-9]+\", \"abc\")", "regex", "did not match");
    error("regex(\"(\", \"abc\")", "regex", "invalid regexp pattern");
    error("regex(\"(a)(?P<n>b)\", \"ab\")", "regex", "cannot mix both named and unnamed capture groups");
    error("element([], 0)", "element", "cannot use element function with an empty list");
    error("indexof([\"a\"], \"b\")", "indexof", "item not found");
    error("indexof([], \"b\")", "indexof", "cannot search an empty list");
    error("slice([1, 2], 2, 1)", "slice", "start index must not be greater than end index");
    error("slice([1, 2], 0, 3)", "slice", "end index must not be greater than the length of the list");
    error("zipmap([\"a\"], [])", "zipmap", "number of keys (1) does not match number of values (0)");
    error("chunklist([1], -1)", "chunklist", "the size argument must be positive");
    error("range(1, 0, 1)", "range", "end must be greater than start when step is positive");
    error("range(0, 1, 0)", "range", "step must not be zero");
    error("range(2000)", "range", "more than 1024 values");
    error("divide(1, 0)", "divide", "cannot divide by zero");
    error("coalesce(null)", "coalesce", "no non-null arguments");
    error("coalesce(1, true)", "coalesce", "all arguments must have the same type");
    error("format(\"%d\", 1.5)", "format", "an integer is required");
    error("format(\"%s %s\", \"a\")", "format", "not enough arguments");
    error("format(\"%s\", \"a\", \"b\")", "format", "too many arguments; only 1 used");
    error("format(\"%y\", 1)", "format", "unsupported format verb");
    error("formatlist(\"%s%s\", [\"a\"], [\"b\", \"c\"])", "formatlist", "inconsistent with argument 2");
    error("formatdate(\"YYY\", \"2020-01-01T00:00:00Z\")", "formatdate", "year must either be");
    error("formatdate(\"YYYY\", \"2020-01-01\")", "formatdate", "not a valid RFC3339 timestamp");
    error("formatdate(\"'abc\", \"2020-01-01T00:00:00Z\")", "formatdate", "unterminated literal");
    error("timeadd(\"2020-01-01T00:00:00Z\", \"1x\")", "timeadd", "unknown unit");
    error("timeadd(\"2020-01-01T00:00:00Z\", \"10\")", "timeadd", "missing unit");
    error("unixtimestampparse(1.5)", "unixtimestampparse", "must be an integer");
    error("base64decode(\"%%%\")", "base64decode", "failed to decode base64");
    error("base64decode(\"/w==\")", "base64decode", "not valid UTF-8");
    error("jsondecode(\"{\")", "jsondecode", "invalid JSON");
    error("csvdecode(\"a,b\\n1\")", "csvdecode", "wrong number of fields");
    error("cidrhost(\"10.0.0.0/30\", 4)", "cidrhost", "prefix of 30 does not accommodate a host numbered 4");
    error("cidrhost(\"10.0.0.0\", 1)", "cidrhost", "invalid CIDR expression");
    error("cidrsubnet(\"10.0.0.0/30\", 4, 1)", "cidrsubnet", "insufficient address space");
    error("cidrsubnet(\"10.0.0.0/8\", 2, 4)", "cidrsubnet", "does not accommodate a subnet numbered 4");
    error("cidrsubnets(\"10.0.0.0/30\", 1, 1, 1)", "cidrsubnets", "not enough remaining address space");
    error("semvercmp(\"not-a-version\", \">1\")", "semvercmp", "is not a semantic version");
    error("semvercmp(\"1.0.0\", \"> > 1\")", "semvercmp", "improper constraint");
    error("uuidv5(\"nope\", \"x\")", "uuidv5", "doesn't support namespace nope");
    error("rsadecrypt(\"!!\", \"key\")", "rsadecrypt", "cipher text must be base64-encoded");
    error("rsadecrypt(\"aGk=\", \"not a key\")", "rsadecrypt", "failed to parse key");
    error("try(nope1, nope2)", "try", "no expression succeeded");
    error("sort([\"a\", null])", "sort", "null string cannot be sorted");
    error("join(\",\", [\"a\", null])", "join", "element 1 of list 1 is null");
}

#[test]
fn undefined_function_names_itself() {
    let err = eval("nosuchfn(1)").unwrap_err();
    assert!(err.contains("undefined function `nosuchfn`"), "{err}");
    // Inside try's argument the failure is caught; outside it is not.
    assert_eq!(ok("try(nosuchfn(1), \"x\")"), Value::from("x"));
    assert_eq!(ok("can(nosuchfn(1))"), Value::Bool(false));
}

#[test]
fn changing_results_have_their_shape() {
    let timestamp = text("timestamp()");
    let re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").unwrap();
    assert!(re.is_match(&timestamp), "{timestamp}");
    let uuid = text("uuidv4()");
    let re = regex::Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$").unwrap();
    assert!(re.is_match(&uuid), "{uuid}");
    assert_ne!(uuid, text("uuidv4()"));
    let hash = text("bcrypt(\"secret\", 4)");
    let re = regex::Regex::new(r"^\$2a\$04\$[./A-Za-z0-9]{53}$").unwrap();
    assert!(re.is_match(&hash), "{hash}");
    assert!(::bcrypt::verify("secret", &hash).unwrap());
    assert!(text("bcrypt(\"x\")").starts_with("$2a$10$"));
    if let Ok(home) = std::env::var("HOME") {
        assert_eq!(text("homedir()"), home);
    }
}

#[test]
fn lazy_arguments_and_for_expressions() {
    // The branch not taken is not evaluated.
    assert_eq!(ok("false ? nosuchfn() : 1"), Value::from(1));
    // try and can see the variables a for expression binds.
    assert_eq!(
        ok("[for v in [\"1\", \"x\", \"3\"] : try(parseint(v, 10), -1)]"),
        Value::Array(vec![Value::from(1), Value::from(-1), Value::from(3)])
    );
    assert_eq!(ok("[for v in [\"a\", 1] : can(upper(v))]"), Value::Array(vec![Value::Bool(true), Value::Bool(true)]));
    // Templates holding lazy calls.
    assert_eq!(ok("\"v=${try(nope, \"d\")}!\""), Value::from("v=d!"));
    assert_eq!(ok("\"%{ if can(nope) }a%{ else }b%{ endif }\""), Value::from("b"));
    assert_eq!(ok("\"${try(nope, 5)}\""), Value::from(5));
    // Strip markers and a for directive whose body holds a lazy call: the
    // same text as hcl-rs renders without one.
    for template in [
        r#""%{ for x in ["a", "b"] ~}\n  ${X}  \n%{~ endfor }!""#,
        r#""<%{ if true ~}  ${X}  %{~ else }no%{ endif ~}  >""#,
        r#""a  ${~ X ~}  b""#,
    ] {
        let plain = ok(&template.replace('X', "\"v\""));
        let lazy = ok(&template.replace('X', "try(nope, \"v\")"));
        assert_eq!(lazy, plain, "{template}");
    }
    // Objects iterate in sorted key order, as go-cty's do.
    assert_eq!(ok("[for k, v in {b = 1, a = 2} : k]"), Value::Array(vec![Value::from("a"), Value::from("b")]));
    // Grouping and duplicates.
    assert!(eval("{for s in [\"a\", \"a\"] : s => s}").unwrap_err().contains("duplicate object key"));
}

#[test]
fn numbers_print_as_go_cty_prints_them() {
    let n = |src: &str| match ok(src) {
        Value::Number(n) => super::number_text(&n),
        other => panic!("{other:?}"),
    };
    assert_eq!(n("divide(10, 4)"), "2.5");
    assert_eq!(n("pow(2, 70)"), "1180591620717411300000");
    assert_eq!(n("multiply(4294967296, 2147483648)"), "9223372036854775808");
    assert_eq!(n("add(9223372036854775807, 1)"), "9223372036854775808");
    assert_eq!(n("1e21"), "1000000000000000000000");
    assert_eq!(n("0.000001"), "0.000001");
    assert_eq!(n("max(-3, -1.5)"), "-1.5");
}
