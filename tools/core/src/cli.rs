//! The CLI glue every tool shares: the common flags, argument parsing that never exits the
//! process, logging to stderr, config loading, and writing one report to every sink (terminal,
//! JSON, job summary, step outputs, annotations, JUnit, report file).

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, DEFAULT_FILE};
use crate::exit::{self, Exit};
use crate::gha::{Actions, Level, Location};
use crate::render;
use crate::report::{Report, Status};
use crate::secret::redact;

/// `--format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A readable report on stderr.
    #[default]
    Human,
    /// The JSON report on stdout (the human report still goes to stderr).
    Json,
}

/// Output flags shared by every tool.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// Output format of stdout.
    #[arg(long, value_enum, default_value_t = Format::Human, env = "DEPLOY_FORMAT")]
    pub format: Format,
    /// Also write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE", value_parser = output_file)]
    pub junit: Option<PathBuf>,
    /// Also write the JSON report to FILE (in Actions, default: under RUNNER_TEMP).
    #[arg(long, value_name = "FILE", env = "DEPLOY_REPORT", value_parser = output_file)]
    pub report: Option<PathBuf>,
}

/// A file a tool writes when it ends (`--junit`, `--report`, rollback's `--incident-file`):
/// checked when the flags are read, so that a typo in its directory is a usage error before
/// anything changes, not after a push or a rollback already happened.
pub fn output_file(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        return Err("an empty path".into());
    }
    let p = PathBuf::from(s);
    if p.is_dir() {
        return Err(format!("{s} is a directory, not a file"));
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        return Err(format!("directory {} does not exist", dir.display()));
    }
    Ok(p)
}

/// Target flags shared by every tool.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// Config file (default: deploy.toml in the current directory, if present).
    #[arg(long, env = "DEPLOY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Environment from the config file (staging, production...).
    #[arg(short = 'e', long, env = "DEPLOY_ENVIRONMENT", value_name = "NAME")]
    pub environment: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The flag of the tools that probe the service over HTTP (health-check, smoke-test, rollback's
/// verification); sync-check and ecr-push do not take it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServiceArgs {
    /// Base URL of the service (overrides the environment's base_url).
    #[arg(long, env = "DEPLOY_BASE_URL", hide_env_values = true, value_name = "URL")]
    pub base_url: Option<String>,
}

impl CommonArgs {
    /// The config file's name for messages and annotations (`deploy.toml` unless `--config`).
    pub fn config_label(&self) -> String {
        self.config
            .as_ref()
            .map_or_else(|| DEFAULT_FILE.to_owned(), |p| p.display().to_string())
    }

    /// Reads the config named by `--config`/`DEPLOY_CONFIG`, or `deploy.toml` in the current
    /// directory when it exists. `None`: no config at all. `reads` names the top-level sections
    /// the tool reads: a `${VAR}` that is not set there (or in the chosen environment) is an
    /// error; elsewhere it is not (see [`Config::require`]).
    pub fn load_config(&self, reads: &[&str]) -> Result<Option<Config>, ConfigError> {
        let config = Config::discover(self.config.as_deref(), Path::new("."))?;
        if let Some(c) = &config {
            c.require(reads, self.environment.as_deref())?;
        }
        Ok(config)
    }
}

/// What a run is aimed at: the config (a file, or an embedded default), the environment and the
/// base URL after flags override the file.
#[derive(Debug)]
pub struct Resolved {
    /// The config.
    pub config: Config,
    /// The environment's name, if one was chosen.
    pub environment: Option<String>,
    /// The base URL (flag, else the environment's), without a trailing slash.
    pub base_url: Option<String>,
}

impl Resolved {
    /// The AWS region of the chosen environment (see [`Config::region_for`]).
    pub fn region(&self) -> Option<&str> {
        self.config.region_for(self.environment.as_deref())
    }

    /// The chosen environment's settings.
    pub fn env(&self) -> Option<&crate::config::Environment> {
        self.environment
            .as_deref()
            .and_then(|n| self.config.environments.get(n))
    }

    /// A label for reports: `staging https://...`.
    pub fn label(&self) -> String {
        match (&self.environment, &self.base_url) {
            (Some(e), Some(u)) => format!("{e} {u}"),
            (None, Some(u)) => u.clone(),
            (Some(e), None) => e.clone(),
            (None, None) => "(no base URL)".to_owned(),
        }
    }
}

impl CommonArgs {
    /// Loads the config (or parses `embedded` when there is no file), checks the environment
    /// exists and every variable under `reads` is set, and settles the base URL.
    pub fn resolve(
        &self,
        service: &ServiceArgs,
        embedded: &str,
        reads: &[&str],
    ) -> anyhow::Result<Resolved> {
        let config = match self.load_config(reads)? {
            Some(c) => c,
            None => {
                let c = Config::parse(embedded, "<embedded Control Center default>")?;
                c.require(reads, self.environment.as_deref())?;
                c
            }
        };
        let env_url = match &self.environment {
            Some(n) => match config.environment(n)?.base_url.as_ref() {
                Some(u) => {
                    crate::urls::validate_base_url(u.base()).map_err(|e| {
                        exit::usage(format!(
                            "{}: environments.{n}.base_url: {e}: {:?}",
                            config.source,
                            crate::urls::shown_url(u.base())
                        ))
                    })?;
                    Some(u.base().to_owned())
                }
                None => None,
            },
            None => None,
        };
        let base_url = match &service.base_url {
            Some(u) => {
                crate::urls::validate_base_url(u).map_err(|e| {
                    exit::usage(format!("--base-url: {e}: {:?}", crate::urls::shown_url(u)))
                })?;
                Some(u.trim_end_matches('/').to_owned())
            }
            None => env_url,
        };
        Ok(Resolved {
            config,
            environment: self.environment.clone(),
            base_url,
        })
    }
}

/// Parses the arguments without ever exiting the process: `--help`/`--version` print and give 0,
/// bad arguments print clap's message, set the `outcome` and `exit-code` step outputs, and give 2.
pub fn parse<A: clap::Parser>() -> Result<A, Exit> {
    parse_from(std::env::args_os())
}

/// [`parse`] over the given arguments (the first is the program name): the multi-call binary
/// hands each tool its own argv, whatever name the binary was started under.
pub fn parse_from<A, I, T>(args: I) -> Result<A, Exit>
where
    A: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    parse_reporting(args).map_err(|(exit, _)| exit)
}

/// [`parse_from`], and for refused flags the line that says why (for the check run that must
/// still answer: [`crate::github::answer_refused_flags`]).
pub fn parse_reporting<A, I, T>(args: I) -> Result<A, (Exit, Option<String>)>
where
    A: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    A::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            // The action promises these outputs whatever happened, a bad flag included.
            let mut gha = Actions::from_env();
            let _ = gha.set_output("outcome", &Exit::Usage.to_string());
            let _ = gha.set_output("exit-code", &Exit::Usage.code().to_string());
            let why = e
                .render()
                .to_string()
                .lines()
                .next()
                .unwrap_or("the flags were refused")
                .trim_start_matches("error: ")
                .to_owned();
            (Exit::Usage, Some(why))
        } else {
            (Exit::Passed, None)
        }
    })
}

/// Our own crates: `DEPLOY_LOG=debug` turns these up; everything else stays at `warn` unless a
/// directive names it (`DEPLOY_LOG=debug,hyper=debug`).
const OWN_CRATES: [&str; 8] = [
    "deploy_core",
    "deploy_action",
    "sync_check",
    "ecr_push",
    "health_check",
    "smoke_test",
    "rollback",
    "deploy_action_e2e",
];

/// The log filter for a `DEPLOY_LOG`/`RUST_LOG` value: a bare level (`debug`) applies to our
/// crates only; directives naming a target are kept as written, but a third-party crate goes no
/// further than `debug` (at `trace` the AWS SDK prints whole responses, ECR's registry password
/// among them, before the tool can register it as a secret); third-party crates stay at `warn`
/// unless named (the AWS SDK's credential-chain chatter at `error`), and octocrab off (it logs its
/// own request errors, which ours repeat with context).
pub fn log_filter(spec: Option<&str>) -> String {
    let mut parts: Vec<String> = vec![
        "warn".into(),
        "aws_config=error".into(),
        "aws_smithy_runtime=error".into(),
        "octocrab=off".into(),
    ];
    let own_level = |level: &str| -> Vec<String> {
        OWN_CRATES.iter().map(|c| format!("{c}={level}")).collect()
    };
    match spec.map(str::trim).filter(|s| !s.is_empty()) {
        None => parts.extend(own_level("info")),
        Some(spec) => {
            for d in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                if d.contains('=') || d.contains('[') || d.contains("::") {
                    parts.push(at_most_debug_for_others(d));
                } else {
                    parts.extend(own_level(d));
                }
            }
        }
    }
    parts.join(",")
}

/// A directive as written when it names one of our crates; else the same directive with a level
/// of `trace` (or none, which means `trace`) lowered to `debug`.
fn at_most_debug_for_others(d: &str) -> String {
    // `target[span{field=value}]=level`: the level follows the last `=` outside the brackets.
    let (lhs, level) = match d.rsplit_once('=') {
        Some((l, v)) if !v.contains([']', '}']) => (l, Some(v.trim())),
        _ => (d, None),
    };
    let target = lhs.split('[').next().unwrap_or("").trim();
    let own = OWN_CRATES
        .iter()
        .any(|c| target == *c || target.starts_with(&format!("{c}::")));
    let too_verbose = level.is_none_or(|l| l.eq_ignore_ascii_case("trace") || l == "5");
    if own || !too_verbose {
        d.to_owned()
    } else {
        format!("{lhs}=debug")
    }
}

/// Logs go to stderr through [`RedactingStderr`]; `DEPLOY_LOG` (or `RUST_LOG`) sets the filter
/// ([`log_filter`]).
pub fn init_logging() {
    let spec = std::env::var("DEPLOY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(spec.as_deref()))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter(None)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_ansi(use_colour())
        .with_target(false)
        .without_time()
        .try_init();
}

fn use_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// The one writer every log line goes through: it collects a line and writes it to stderr
/// with every registered secret scrubbed ([`redact`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

/// One log event on its way to stderr (written, redacted, when dropped or flushed).
#[derive(Debug, Default)]
pub struct RedactingLine(Vec<u8>);

impl Write for RedactingLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.0.is_empty() {
            let text = redact(&String::from_utf8_lossy(&self.0));
            self.0.clear();
            let mut err = std::io::stderr().lock();
            err.write_all(text.as_bytes())?;
            err.flush()?;
        }
        Ok(())
    }
}

impl Drop for RedactingLine {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingLine;
    fn make_writer(&'a self) -> RedactingLine {
        RedactingLine::default()
    }
}

/// A panic prints one redacted line saying it is an internal error (never the raw payload,
/// which may hold a secret), and the run ends with exit 3.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let _ = writeln!(std::io::stderr(), "{}", panic_line(&payload, at.as_deref()));
    }));
}

/// The one line a panic prints: redacted, saying it is a bug.
fn panic_line(payload: &str, at: Option<&str>) -> String {
    let at = at.map(|a| format!(" at {a}")).unwrap_or_default();
    format!(
        "error: internal error: {}{at} (a bug in {}: please report it)",
        redact(payload),
        tool_name()
    )
}

/// `body`, with a panic in it turned into a dependency error ("internal error") where the tool
/// can still answer its check run with it; the panic hook has already printed the redacted line.
pub async fn catching<T>(body: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body)).await {
        Ok(r) => r,
        Err(_) => Err(exit::dependency(
            "internal error (see the line above); the run stopped",
        )),
    }
}

/// Runs a tool's body: installs the mask hook (inside Actions, `::add-mask::` the moment a
/// secret is known), the redacting log writer and the panic hook, awaits the body, and turns an
/// error into its exit code with one redacted line on stderr (and an error annotation inside
/// Actions). A panic is an internal error: exit 3.
pub async fn run<F>(body: F) -> std::process::ExitCode
where
    F: Future<Output = anyhow::Result<Exit>>,
{
    crate::gha::install_mask_hook();
    init_logging();
    install_panic_hook();
    let result =
        match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body)).await {
            Ok(r) => r,
            Err(_) => Err(exit::dependency(
                "internal error (see the line above); the run stopped",
            )),
        };
    let exit = match result {
        Ok(e) => e,
        Err(err) => {
            let code = exit::classify(&err);
            let line = redact(&format!("{err:#}"));
            let _ = writeln!(std::io::stderr(), "error: {line}");
            let mut gha = Actions::from_env();
            let _ = gha.mask_registered();
            let _ = gha.annotate(Level::Error, &line, &Location::default());
            // The action promises these outputs whatever happened.
            let _ = gha.set_output("outcome", &code.to_string());
            let _ = gha.set_output("exit-code", &code.code().to_string());
            let _ = gha.append_summary(&format!(
                "### ⚠️ {}\n\n> **Error:** {}\n",
                tool_name(),
                render::markdown::cell(&line)
            ));
            code
        }
    };
    exit.into()
}

fn tool_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "deploy-action".to_owned())
}

/// Completes when the process gets SIGINT or SIGTERM (GitHub cancels jobs with them); the
/// handlers are installed when it is first polled. See [`Cancel`].
pub async fn interrupted() -> &'static str {
    Cancel::watch().arrived().await
}

/// Watches for SIGINT and SIGTERM from the moment it is made, without letting either end the
/// process: once tokio listens for a signal the default "terminate now" is gone, so a cancelled
/// job cannot kill a tool between two steps that must happen together (a rebase and its restore,
/// a manifest and its tags). Blocking work asks [`Cancel::signal`]; async work awaits
/// [`Cancel::arrived`]; clones share one watch.
#[derive(Debug, Clone)]
pub struct Cancel(tokio::sync::watch::Receiver<Option<&'static str>>);

impl Cancel {
    /// Starts watching (the handlers are installed before this returns). Needs a tokio runtime.
    pub fn watch() -> Cancel {
        let (tx, rx) = tokio::sync::watch::channel(None);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (int, term) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            );
            if let (Ok(mut int), Ok(mut term)) = (int, term) {
                tokio::spawn(async move {
                    let name = tokio::select! {
                        _ = int.recv() => "SIGINT",
                        _ = term.recv() => "SIGTERM",
                    };
                    let _ = tx.send(Some(name));
                });
            }
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(Some("SIGINT"));
            }
        });
        Cancel(rx)
    }

    /// The signal that arrived, if one did.
    pub fn signal(&self) -> Option<&'static str> {
        *self.0.borrow()
    }

    /// Completes when a signal has arrived (never, if no handler could be installed).
    pub async fn arrived(&self) -> &'static str {
        let mut rx = self.0.clone();
        let seen = rx.wait_for(Option::is_some).await.ok().and_then(|s| *s);
        match seen {
            Some(s) => s,
            None => std::future::pending().await,
        }
    }
}

/// Writes `report` everywhere it belongs and returns its outcome:
/// the human report on stderr; JSON on stdout with `--format json`; the JUnit file; the JSON report
/// file; and inside Actions the masks, one error annotation per failed check, the step outputs
/// (`outcome`, `exit-code`, `report`, and the report's own outputs) and the job summary.
pub fn emit(report: &Report, out: &OutputArgs) -> anyhow::Result<Exit> {
    let mut gha = Actions::from_env();
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let terminal = Terminal {
        stdout: &mut stdout,
        stderr: &mut stderr,
        colour: use_colour(),
    };
    emit_to(report, out, &mut gha, terminal)
}

/// Where a run's terminal output goes: the JSON report (`--format json`) on `stdout`, the human
/// report on `stderr`, in colour or not.
pub struct Terminal<'a> {
    /// Standard output.
    pub stdout: &'a mut dyn Write,
    /// Standard error.
    pub stderr: &'a mut dyn Write,
    /// ANSI colours in the human report.
    pub colour: bool,
}

/// [`emit`] with explicit sinks (tests).
pub fn emit_to<W: Write>(
    report: &Report,
    out: &OutputArgs,
    gha: &mut Actions<W>,
    mut terminal: Terminal<'_>,
) -> anyhow::Result<Exit> {
    let (stdout, colour) = (&mut terminal.stdout, terminal.colour);
    gha.mask_registered()?;
    render::human::render(report, colour, &mut terminal.stderr)?;
    if out.format == Format::Json {
        stdout.write_all(render::json(report).as_bytes())?;
        stdout.flush()?;
    }
    if let Some(path) = &out.junit {
        std::fs::write(path, render::junit::render(report)).map_err(|e| {
            exit::usage(format!("couldn't write JUnit file {}: {e}", path.display()))
        })?;
    }
    let report_path = report_file(report, out, gha.enabled())?;
    if gha.enabled() {
        annotate(report, gha)?;
        gha.flush_suppressed()?;
        set_outputs(report, report_path.as_deref(), gha)?;
        gha.append_summary(&render::markdown::render(report))?;
    }
    Ok(report.outcome)
}

/// Writes the JSON report to `--report`, and inside Actions also to a file in `RUNNER_TEMP`
/// (where `health-check --checklist` reads every report of the job, whether or not `--report`
/// was given); its path (`--report`'s when given).
fn report_file(
    report: &Report,
    out: &OutputArgs,
    in_actions: bool,
) -> anyhow::Result<Option<PathBuf>> {
    let json = render::json(report);
    let write = |path: &PathBuf| {
        std::fs::write(path, &json).map_err(|e| {
            exit::usage(format!(
                "couldn't write report file {}: {e}",
                path.display()
            ))
        })
    };
    if let Some(path) = &out.report {
        write(path)?;
    }
    let temp = in_actions.then(|| {
        let dir = std::env::var_os("RUNNER_TEMP").map_or_else(std::env::temp_dir, PathBuf::from);
        dir.join(format!(
            "deploy-action-{}-{}.json",
            report.tool,
            std::process::id()
        ))
    });
    if let Some(path) = &temp {
        write(path)?;
    }
    Ok(out.report.clone().or(temp))
}

/// The report's own annotations, then one per check that did not pass (an error for a failed
/// check, a warning for one that could not run).
fn annotate<W: Write>(report: &Report, gha: &mut Actions<W>) -> anyhow::Result<()> {
    for a in &report.annotations {
        gha.annotate(
            a.level,
            &a.message,
            &Location {
                file: Some(a.file.clone()),
                line: None,
                title: Some(a.title.clone()),
            },
        )?;
    }
    for (c, w) in report
        .checks
        .iter()
        .flat_map(|c| c.warnings.iter().map(move |w| (c, w)))
    {
        gha.annotate(
            Level::Warning,
            &format!("{}: {w}", c.name),
            &Location {
                title: Some(report.tool.clone()),
                ..Location::default()
            },
        )?;
    }
    for c in &report.checks {
        let level = match c.status {
            Status::Failed => Level::Error,
            Status::Error => Level::Warning,
            Status::Passed | Status::Skipped => continue,
        };
        let msg = format!(
            "{}: {}",
            c.name,
            c.reason.as_deref().unwrap_or("did not pass")
        );
        gha.annotate(
            level,
            &msg,
            &Location {
                title: Some(report.tool.clone()),
                ..Location::default()
            },
        )?;
    }
    Ok(())
}

/// The step outputs: `outcome`, `exit-code`, `report` (the report file) and the report's own.
fn set_outputs<W: Write>(
    report: &Report,
    report_path: Option<&Path>,
    gha: &mut Actions<W>,
) -> anyhow::Result<()> {
    gha.set_output("outcome", &report.outcome.to_string())?;
    gha.set_output("exit-code", &report.outcome.code().to_string())?;
    if let Some(p) = report_path {
        gha.set_output("report", &p.display().to_string())?;
    }
    for (k, v) in &report.outputs {
        gha.set_output(k, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Check;
    use std::time::Duration;

    #[tokio::test]
    async fn a_panic_is_an_internal_error_with_exit_3_and_no_secret() {
        crate::secret::register("panic-secret-0451");
        let code = run(async {
            if std::env::var_os("PATH").is_some() {
                panic!("bad state near panic-secret-0451");
            }
            Ok(Exit::Passed)
        })
        .await;
        assert_eq!(code, std::process::ExitCode::from(3));
        let line = panic_line("bad state near panic-secret-0451", Some("src/x.rs:3"));
        assert!(
            line.starts_with("error: internal error: bad state near *** at src/x.rs:3"),
            "{line}"
        );
        let _ = std::panic::take_hook();
    }

    #[test]
    fn debug_logging_turns_up_our_crates_only() {
        let f = log_filter(Some("debug"));
        assert!(f.starts_with("warn,"), "{f}");
        assert!(
            f.contains("deploy_core=debug") && f.contains("health_check=debug"),
            "{f}"
        );
        assert!(!f.contains("hyper") && !f.contains("reqwest"), "{f}");
        // Asked for by name: kept.
        assert!(log_filter(Some("info,hyper=debug")).contains("hyper=debug"));
        assert!(log_filter(None).contains("smoke_test=info"));
    }

    #[tokio::test]
    async fn a_panic_in_a_tool_body_is_an_error_the_tool_can_still_answer_with() {
        let r: anyhow::Result<()> = catching(async { panic!("boom") }).await;
        let e = r.unwrap_err();
        assert_eq!(exit::classify(&e), Exit::Dependency);
        assert!(e.to_string().contains("internal error"), "{e}");
        assert_eq!(catching(async { Ok(7) }).await.unwrap(), 7);
    }

    #[test]
    fn third_party_crates_go_no_further_than_debug() {
        for (spec, want) in [
            ("aws_smithy_runtime=trace", "aws_smithy_runtime=debug"),
            ("aws_smithy_runtime=TRACE", "aws_smithy_runtime=debug"),
            ("hyper::proto", "hyper::proto=debug"),
            ("reqwest[send{url=x}]=trace", "reqwest[send{url=x}]=debug"),
            ("aws_sdk_ecr[op{a=b}]", "aws_sdk_ecr[op{a=b}]=debug"),
            ("h2=5", "h2=debug"),
            // Not more verbose than debug, or one of ours: as written.
            ("hyper=debug", "hyper=debug"),
            ("ecr_push=trace", "ecr_push=trace"),
            ("deploy_core::http=trace", "deploy_core::http=trace"),
        ] {
            let f = log_filter(Some(spec));
            assert!(f.split(',').any(|d| d == want), "{spec}: {f}");
            assert!(
                tracing_subscriber::EnvFilter::try_new(&f).is_ok(),
                "{spec}: {f}"
            );
        }
    }

    #[test]
    fn emit_writes_every_sink() {
        let dir = tempfile::tempdir().unwrap();
        let mut gha = Actions::with_writer(
            true,
            Vec::new(),
            Some(dir.path().join("out")),
            Some(dir.path().join("summary")),
        );
        let mut r = Report::new("smoke-test", "0.1.0", "staging");
        r.push(Check::new("home", Status::Passed));
        r.push(Check::new("api", Status::Failed).reason("HTTP 503"));
        r.output("failed", 1);
        r.finish(Duration::from_millis(3));
        let args = OutputArgs {
            format: Format::Json,
            junit: Some(dir.path().join("junit.xml")),
            report: Some(dir.path().join("report.json")),
        };
        let (mut so, mut se) = (Vec::new(), Vec::new());
        let terminal = Terminal {
            stdout: &mut so,
            stderr: &mut se,
            colour: false,
        };
        let exit = emit_to(&r, &args, &mut gha, terminal).unwrap();
        assert_eq!(exit, Exit::Failed);
        let json: serde_json::Value = serde_json::from_slice(&so).unwrap();
        assert_eq!(json["checks"][1]["reason"], "HTTP 503");
        assert!(String::from_utf8(se).unwrap().contains("✘ api"));
        let outputs = std::fs::read_to_string(dir.path().join("out")).unwrap();
        assert!(outputs.contains("outcome<<") && outputs.contains("\nfailed\n"));
        assert!(outputs.contains("failed<<"));
        let summary = std::fs::read_to_string(dir.path().join("summary")).unwrap();
        assert!(summary.starts_with("### ❌ smoke-test"));
        assert!(
            std::fs::read_to_string(dir.path().join("junit.xml"))
                .unwrap()
                .contains("failures=\"1\"")
        );
        assert!(dir.path().join("report.json").is_file());
        let cmds = String::from_utf8(gha.into_writer()).unwrap();
        assert!(cmds.contains("::error title=smoke-test::api: HTTP 503"));
    }
}
