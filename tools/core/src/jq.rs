//! jq expressions over JSON bodies, via jaq (a maintained Rust jq): the assertion language of
//! health and smoke checks, so the runbook's `jq -r '.status' == "ok"` carries over almost as it is.
//! Programs compile once and are shared across tasks. The `env` builtin is left out: an expression
//! in deploy.toml must not be able to read (and print) the process environment and its secrets.

use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::{Num, Val};
use serde_json::Value;

type D = data::JustLut<Val>;

/// A compiled jq filter. Owned (no lifetimes), `Send + Sync`, cheap to share via `Arc`.
pub struct Program {
    filter: jaq_core::Filter<D>,
}

// Compile-time guarantee that Program can be shared across threads / tokio tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Program>()
};

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Program { .. }")
    }
}

/// Byte offset of `part` inside `whole`, if `part` is a sub-slice of `whole`.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    (p >= w && p + part.len() <= w + whole.len()).then(|| p - w)
}

/// Human-readable location: "offset N (line L, column C)".
fn locate(code: &str, part: &str) -> String {
    match offset_in(code, part) {
        Some(off) => {
            let before = &code[..off];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("at offset {off} (line {line}, column {col})")
        }
        None => "in standard library".to_string(),
    }
}

/// Snippet of what was found at the error position.
fn found(part: &str) -> String {
    let s: String = part.chars().take(20).collect();
    if s.is_empty() {
        "end of input".into()
    } else if crate::secret::holds_part_of_a_secret(&s) {
        // Cut out of a `${VAR}` value: part of a secret, which the redactor would not know.
        "part of a secret (not shown)".into()
    } else {
        format!("{s:?}")
    }
}

/// Whether `expr` defines a function (`def name: ...;`) anywhere it is code: outside string
/// literals, and inside a string's interpolations (`"\(def f: [f]; f)"`), however nested.
fn defines_function(expr: &str) -> bool {
    /// Where the scanner is: code (with the parentheses open in it, when it is an
    /// interpolation), or a string.
    enum At {
        Code(usize),
        Str,
    }
    let mut stack = vec![At::Code(0)];
    let mut chars = expr.chars().peekable();
    let mut word = String::new();
    while let Some(c) = chars.next() {
        let nested = stack.len() > 1;
        match stack.last_mut() {
            Some(At::Str) => match c {
                '\\' if chars.peek() == Some(&'(') => {
                    chars.next();
                    stack.push(At::Code(1));
                }
                '\\' => {
                    chars.next();
                }
                '"' => {
                    stack.pop();
                }
                _ => {}
            },
            Some(At::Code(open)) => {
                if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                    word.push(c);
                    continue;
                }
                if word == "def" {
                    return true;
                }
                word.clear();
                match c {
                    '"' => stack.push(At::Str),
                    '(' => *open += 1,
                    ')' if *open == 1 && nested => {
                        // The end of an interpolation: back in its string.
                        stack.pop();
                    }
                    ')' => *open = open.saturating_sub(1),
                    _ => {}
                }
            }
            None => return false,
        }
    }
    word == "def"
}

/// Deepest nesting `fromjson` reads (serde_json's limit): a body field holding `[[[[...` a
/// million deep is an error of the assertion, not a stack overflow that ends the tool.
const FROMJSON_DEPTH: &str = "128";

/// jq's `fromjson`, read by serde_json (which stops at [`FROMJSON_DEPTH`] levels) instead of
/// jaq's reader (which recurses without a limit).
fn fromjson(cv: jaq_core::Cv<'_, D>) -> jaq_core::ValXs<'_, Val> {
    let r = match &cv.1 {
        Val::TStr(b) | Val::BStr(b) => serde_json::from_slice::<Value>(b)
            .map(|v| to_val(&v))
            .map_err(|e| {
                let nested = if e.to_string().contains("recursion limit") {
                    format!(" (nested deeper than {FROMJSON_DEPTH} levels)")
                } else {
                    String::new()
                };
                jaq_core::Error::str(format!("cannot parse the string as JSON{nested}: {e}"))
            }),
        other => Err(jaq_core::Error::str(format!(
            "cannot parse {} as JSON: not a string",
            crate::jq::type_name(other)
        ))),
    };
    jaq_core::native::bome(r)
}

/// The jq type of a value, for messages.
fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "a boolean",
        Val::Num(_) => "a number",
        Val::TStr(_) | Val::BStr(_) => "a string",
        Val::Arr(_) => "an array",
        Val::Obj(_) => "an object",
    }
}

/// The standard library's definitions, parsed once: parsing them is most of the compile cost.
fn std_defs() -> &'static [load::parse::Def] {
    static DEFS: std::sync::OnceLock<Vec<load::parse::Def>> = std::sync::OnceLock::new();
    DEFS.get_or_init(|| {
        jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .collect()
    })
}

/// What the loader could not read, lex or parse, with where.
fn load_errors(errs: load::Errors<&str, ()>) -> Vec<String> {
    let mut msgs = Vec::new();
    for (file, err) in errs {
        match err {
            load::Error::Io(es) => {
                for (path, e) in es {
                    msgs.push(format!("cannot load module {path:?}: {e}"));
                }
            }
            load::Error::Lex(es) => {
                for (expect, rest) in es {
                    msgs.push(format!(
                        "lex error: expected {} {}, found {}",
                        expect.as_str(),
                        locate(file.code, rest),
                        found(rest)
                    ));
                }
            }
            load::Error::Parse(es) => {
                for (expect, tok) in es {
                    // `tok` is the offending token's text (empty slice at end of input)
                    let (loc, what) = (locate(file.code, tok), found(tok));
                    msgs.push(format!(
                        "parse error: expected {} {loc}, found {what}",
                        expect.as_str()
                    ));
                }
            }
        }
    }
    msgs
}

/// The undefined filters and variables the compiler found, with where.
fn compile_errors(errs: jaq_core::compile::Errors<&str, ()>) -> Vec<String> {
    errs.into_iter()
        .flat_map(|(file, es)| {
            es.into_iter().map(move |(name, undef)| {
                let what = match undef {
                    jaq_core::compile::Undefined::Filter(arity) => {
                        format!("undefined filter {name}/{arity}")
                    }
                    other => format!("undefined {} {name}", other.as_str()),
                };
                format!("{what} {}", locate(file.code, name))
            })
        })
        .collect()
}

impl Program {
    /// Parse and compile `expr` with the jq standard library (jaq-core + jaq-std + jaq-json defs/funs).
    /// An assertion may not define functions: a recursive `def` could overflow the stack, which
    /// ends the process without a report (the standard library's functions remain).
    pub fn compile(expr: &str) -> Result<Program, String> {
        if defines_function(expr) {
            return Err(format!(
                "invalid jq expression {expr:?}: assertions may not define functions (def); use the standard library's"
            ));
        }
        let invalid =
            |msgs: Vec<String>| format!("invalid jq expression {expr:?}: {}", msgs.join("; "));
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .filter(|f| f.0 != "env" && f.0 != "fromjson")
            .chain(std::iter::once(jaq_core::native::run::<D>((
                "fromjson",
                jaq_core::native::v(0),
                fromjson,
            ))));
        let arena = Arena::default();
        let file = File {
            code: expr,
            path: (),
        };
        let modules = Loader::new(std_defs().iter().cloned())
            .load(&arena, file)
            .map_err(|errs| invalid(load_errors(errs)))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| invalid(compile_errors(errs)))?;
        Ok(Program { filter })
    }

    /// Run the filter on `input`, calling `f` on each output until it returns `false`.
    fn for_each(&self, input: &Value, mut f: impl FnMut(Val) -> bool) -> Result<(), String> {
        let ctx = Ctx::<D>::new(&self.filter.lut, Vars::new([]));
        for out in self.filter.id.run((ctx, to_val(input))) {
            // NB: don't use jaq_core::unwrap_valr: it calls std::process::exit on `halt`.
            match out {
                Ok(v) => {
                    if !f(v) {
                        break;
                    }
                }
                Err(exn) => {
                    return Err(match exn.get_err() {
                        // into_val: error("x") -> "x"; built-in errors -> their message string
                        Ok(err) => match err.into_val() {
                            Val::TStr(b) | Val::BStr(b) => {
                                format!("jq error: {}", String::from_utf8_lossy(&b))
                            }
                            other => format!("jq error (not a string): {other}"),
                        },
                        Err(exn) => match exn.get_halt() {
                            Ok(code) => format!("jq program halted with exit code {code}"),
                            Err(exn) => format!("jq internal exception: {exn:?}"),
                        },
                    });
                }
            }
        }
        Ok(())
    }

    /// All outputs of the filter, or the first runtime error as text.
    pub fn run(&self, input: &Value) -> Result<Vec<Value>, String> {
        let mut outs = Vec::new();
        self.for_each(input, |v| {
            outs.push(from_val(&v));
            true
        })?;
        Ok(outs)
    }

    /// `jq -e` truthiness: true iff there is at least one output and the last output is
    /// neither `false` nor `null` (jq -e's exit status looks at the last output only; write
    /// `all(...)` to require every output). A runtime error is returned as the error.
    pub fn truthy(&self, input: &Value) -> Result<bool, String> {
        let mut last: Option<bool> = None;
        self.for_each(input, |v| {
            last = Some(!matches!(v, Val::Null | Val::Bool(false)));
            true
        })?;
        Ok(last.unwrap_or(false))
    }
}

/// serde_json -> jaq value.
pub fn to_val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => Val::Num(if let Some(i) = n.as_i64() {
            Num::from_integral(i)
        } else if let Some(u) = n.as_u64() {
            Num::from_integral(u)
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        Value::String(s) => Val::from(s.clone()),
        Value::Array(a) => a.iter().map(to_val).collect(),
        Value::Object(o) => Val::obj(
            o.iter()
                .map(|(k, v)| (Val::from(k.clone()), to_val(v)))
                .collect(),
        ),
    }
}

fn num_to_json(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::from(*i as i64),
        Num::Float(f) if f.is_nan() => Value::Null, // like jq
        Num::Float(f) if f.is_infinite() => Value::from(f.signum() * f64::MAX), // like jq
        Num::Float(f) => Value::from(*f),
        // BigInt / Dec (decimal literals are kept as text): reparse their JSON text.
        other => {
            let s = other.to_string();
            s.parse::<serde_json::Number>()
                .map(Value::Number)
                .or_else(|_| s.parse::<f64>().map(Value::from))
                .unwrap_or(Value::Null)
        }
    }
}

/// jaq -> serde_json value. Byte strings become (lossy UTF-8) strings;
/// non-string object keys are rendered as their JSON text.
pub fn from_val(v: &Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => num_to_json(n),
        Val::TStr(b) | Val::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(a) => Value::Array(a.iter().map(from_val).collect()),
        Val::Obj(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                        other => other.to_string(),
                    };
                    (key, from_val(v))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(expr: &str, v: serde_json::Value) -> bool {
        Program::compile(expr).unwrap().truthy(&v).unwrap()
    }

    #[test]
    fn a_def_is_refused_wherever_it_is_code() {
        for expr in [
            "def f: [f]; f",
            r#""\(def f: [f]; f)" | true"#,
            r#""a \("b" | "\(def g: 1; g)")" | true"#,
            r#"("\(1)" | length) as $n | "\((def h: h; h))""#,
        ] {
            let e = Program::compile(expr).unwrap_err();
            assert!(e.contains("may not define functions"), "{expr}: {e}");
        }
        // In a string it is text, and around an interpolation too.
        for expr in [
            r#".x == "def""#,
            r#""\(.a) def" | length > 0"#,
            r#""\("(") def \(")")" | length > 0"#,
        ] {
            assert!(Program::compile(expr).is_ok(), "{expr}");
        }
    }

    #[test]
    fn fromjson_of_a_deeply_nested_string_is_an_error_not_a_crash() {
        let deep = "[".repeat(1_000_000);
        let p = Program::compile(".s | fromjson").unwrap();
        let e = p.truthy(&json!({ "s": deep })).unwrap_err();
        assert!(e.contains("nested deeper than 128 levels"), "{e}");
        assert!(t(".s | try fromjson catch true", json!({ "s": deep })));
        assert!(t(
            r#".s | fromjson | .a == 1"#,
            json!({ "s": "{\"a\": 1}" })
        ));
        assert!(t(r#"[.s | fromjson] == [[1, 2]]"#, json!({ "s": "[1,2]" })));
        assert!(!t(".s | try fromjson catch false", json!({ "s": "1 2" })));
        assert!(!t(". | try fromjson catch false", json!(5)));
    }

    #[test]
    fn runbook_expressions() {
        assert!(t(".ready == true", json!({"ready": true})));
        assert!(!t(".ready == true", json!({"ready": "true"})));
        assert!(t(r#".status == "ok""#, json!({"status": "ok"})));
        assert!(t(".workflows != null", json!({"workflows": []})));
        assert!(!t(".workflows", json!({"workflows": null})));
        assert!(t(
            r#".servers | to_entries | map(select(.value.status != "healthy")) | length == 0"#,
            json!({"servers": {"a": {"status": "healthy"}}})
        ));
        assert!(t(r#"(.a // "x") | test("^x")"#, json!({})));
    }

    #[test]
    fn truthiness_is_jq_e() {
        assert!(!t("empty", json!(null)));
        assert!(!t("null", json!(null)));
        // jq -e looks at the last output only: `false, true` exits 0, `true, false` exits 1.
        assert!(t("false, true", json!(null)));
        assert!(!t("true, false", json!(null)));
        assert!(!t(".[] | . > 1", json!([3, 0])));
        assert!(t("all(.[]; . > 1)", json!([3, 2])));
        assert!(!t("all(.[]; . > 1)", json!([3, 0])));
        assert!(t("0", json!(null)));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Program::compile(".a | (").unwrap_err();
        assert!(
            e.contains("invalid jq expression") && e.contains("column"),
            "{e}"
        );
        let e = Program::compile("nosuchfn(1)").unwrap_err();
        assert!(e.contains("undefined filter nosuchfn/1"), "{e}");
        let e = Program::compile(".a | keys")
            .unwrap()
            .run(&json!({"a": "str"}))
            .unwrap_err();
        assert!(e.starts_with("jq error"), "{e}");
    }

    #[test]
    fn function_definitions_are_refused_but_the_word_in_strings_is_fine() {
        let e = Program::compile("def f: f; f").unwrap_err();
        assert!(e.contains("may not define functions"), "{e}");
        assert!(Program::compile("1 as $x | def g: 2; g").is_err());
        assert!(t(r#".a == "def f: 1;""#, json!({"a": "def f: 1;"})));
        assert!(t(".define == 1", json!({"define": 1})));
    }

    #[test]
    fn env_is_not_available() {
        let e = Program::compile("env.HOME").unwrap_err();
        assert!(e.contains("undefined filter env"), "{e}");
    }
}
