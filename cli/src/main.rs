//! `consumer-auth`: check configurations offline, hash secrets, turn a Kong decK file into an
//! Envoy bootstrap, serve Kong's Admin API for consumers. See docs/CLI.md and docs/ADMIN_API.md.

use std::io::Read;
use std::process::ExitCode;

use consumer_auth_cli::{check, deck, envoy, hash, EXIT_OK, EXIT_REFUSED, EXIT_USAGE};
use lexopt::prelude::*;

const USAGE: &str = "\
usage: consumer-auth check [--as auto|filter|source] FILE...   (- reads stdin)
       consumer-auth hash key [SECRET]                          (no SECRET: read from stdin)
       consumer-auth hash password [--consumer-id ID] [PASSWORD]
       consumer-auth from-deck KONG_YAML --wasm PATH [--listen HOST:PORT] [--admin HOST:PORT] [--skip-unsupported]
                                 [--consumer-store NAME]
       consumer-auth serve [--admin-listen ADDR] [--database URL] [--admin-token TOKEN] [--body-limit BYTES]
       consumer-auth migrate [--database URL]
       consumer-auth import KONG_YAML [--database URL]

exit status: 0 ok, 1 refused or unsupported, 2 usage error";

/// A usage error: the message, printed with the usage.
struct Usage(String);

impl From<lexopt::Error> for Usage {
    fn from(e: lexopt::Error) -> Self {
        Usage(e.to_string())
    }
}

fn main() -> ExitCode {
    let code = match run() {
        Ok(code) => code,
        Err(Usage(message)) => {
            eprintln!("consumer-auth: {message}\n{USAGE}");
            EXIT_USAGE
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run() -> Result<i32, Usage> {
    let mut parser = lexopt::Parser::from_env();
    match parser.next()? {
        Some(Value(cmd)) => match cmd.string()?.as_str() {
            "check" => run_check(&mut parser),
            "hash" => run_hash(&mut parser),
            "from-deck" => run_from_deck(&mut parser),
            "serve" => run_serve(&mut parser),
            "migrate" => run_migrate(&mut parser),
            "import" => run_import(&mut parser),
            other => Err(Usage(format!("unknown command '{other}'"))),
        },
        Some(Short('h') | Long("help")) => {
            println!("{USAGE}");
            Ok(EXIT_OK)
        }
        Some(arg) => Err(arg.unexpected().into()),
        None => Err(Usage("a command is needed".into())),
    }
}

fn read_input(name: &str) -> std::io::Result<Vec<u8>> {
    if name == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(name)
    }
}

fn run_check(parser: &mut lexopt::Parser) -> Result<i32, Usage> {
    let mut files = Vec::new();
    let mut kind = check::Kind::Auto;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("as") => {
                kind = match parser.value()?.string()?.as_str() {
                    "auto" => check::Kind::Auto,
                    "filter" => check::Kind::Filter,
                    "source" => check::Kind::Source,
                    other => return Err(Usage(format!("--as: '{other}' is not one of auto, filter, source"))),
                }
            }
            Value(f) => files.push(f.string()?),
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(EXIT_OK);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if files.is_empty() {
        return Err(Usage("check: at least one FILE is needed".into()));
    }
    let mut code = EXIT_OK;
    for f in &files {
        match read_input(f) {
            Ok(bytes) => {
                let result = check::check_document(&bytes, kind);
                if result.is_err() {
                    code = code.max(EXIT_REFUSED);
                }
                println!("{}", check::report_line(if f == "-" { "<stdin>" } else { f }, &result));
            }
            Err(e) => {
                eprintln!("{f}: cannot read: {e}");
                code = EXIT_USAGE;
            }
        }
    }
    Ok(code)
}

fn secret(given: Option<String>) -> Result<String, Usage> {
    match given {
        Some(s) => Ok(s),
        None => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).map_err(|e| Usage(format!("cannot read stdin: {e}")))?;
            Ok(hash::secret_from_input(input))
        }
    }
}

fn run_hash(parser: &mut lexopt::Parser) -> Result<i32, Usage> {
    let what = match parser.next()? {
        Some(Value(w)) => w.string()?,
        Some(other) => return Err(other.unexpected().into()),
        None => return Err(Usage("hash: 'key' or 'password' is needed".into())),
    };
    let mut consumer_id = None;
    let mut given = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("consumer-id") if what == "password" => consumer_id = Some(parser.value()?.string()?),
            Value(v) if given.is_none() => given = Some(v.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let result = match what.as_str() {
        "key" => hash::key_hash(&secret(given)?),
        "password" => hash::password_hash(&secret(given)?, consumer_id.as_deref()),
        other => return Err(Usage(format!("hash: '{other}' is not 'key' or 'password'"))),
    };
    match result {
        Ok(v) => {
            println!("{v}");
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("consumer-auth: {e}");
            Ok(EXIT_REFUSED)
        }
    }
}

fn run_from_deck(parser: &mut lexopt::Parser) -> Result<i32, Usage> {
    let mut file = None;
    let mut wasm = None;
    let mut out = envoy::Options::default();
    let mut options = deck::Options::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("wasm") => wasm = Some(parser.value()?.string()?),
            Long("listen") => {
                let v = parser.value()?.string()?;
                out.listen =
                    envoy::parse_address(&v).ok_or_else(|| Usage(format!("--listen: '{v}' is not HOST:PORT")))?;
            }
            Long("admin") => {
                let v = parser.value()?.string()?;
                out.admin =
                    envoy::parse_address(&v).ok_or_else(|| Usage(format!("--admin: '{v}' is not HOST:PORT")))?;
            }
            Long("skip-unsupported") => options.skip_unsupported = true,
            Long("consumer-store") => options.consumer_store = Some(parser.value()?.string()?),
            Value(v) if file.is_none() => file = Some(v.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let file = file.ok_or_else(|| Usage("from-deck: KONG_YAML is needed".into()))?;
    out.wasm =
        wasm.ok_or_else(|| Usage("from-deck: --wasm PATH is needed (the filter's .wasm as Envoy opens it)".into()))?;
    let text = match read_input(&file) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| Usage(format!("{file}: not UTF-8 text")))?,
        Err(e) => return Err(Usage(format!("{file}: cannot read: {e}"))),
    };
    match deck::translate(&text, &options) {
        Ok(t) => {
            for n in &t.notes {
                eprintln!("note: {n}");
            }
            for w in &t.warnings {
                eprintln!("warning: {w}");
            }
            let bootstrap = envoy::bootstrap(&t, &out);
            match envoy::to_yaml(&t, &bootstrap, &file) {
                Ok(yaml) => {
                    print!("{yaml}");
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    eprintln!("consumer-auth: cannot write YAML: {e}");
                    Ok(EXIT_REFUSED)
                }
            }
        }
        Err(deck::Refused(errors)) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!(
                "consumer-auth: {file}: {} problem(s); nothing written (--skip-unsupported turns what cannot be carried over into warnings)",
                errors.len()
            );
            Ok(EXIT_REFUSED)
        }
    }
}

/// A flag's value, else its environment variable, else the default.
fn flag_or_env(flag: Option<String>, env: &str, default: &str) -> String {
    flag.or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty())).unwrap_or_else(|| default.to_string())
}

const ENV_ADMIN_LISTEN: &str = "CONSUMER_AUTH_ADMIN_LISTEN";
const ENV_DATABASE: &str = "CONSUMER_AUTH_DATABASE";
const ENV_ADMIN_TOKEN: &str = "CONSUMER_AUTH_ADMIN_TOKEN";

fn runtime() -> Result<tokio::runtime::Runtime, Usage> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Usage(format!("cannot start the runtime: {e}")))
}

fn run_serve(parser: &mut lexopt::Parser) -> Result<i32, Usage> {
    use consumer_auth_service::{ServeConfig, DEFAULT_ADMIN_LISTEN, DEFAULT_DATABASE};
    let (mut listen, mut database, mut token) = (None, None, None);
    let mut config = ServeConfig::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("admin-listen") => listen = Some(parser.value()?.string()?),
            Long("database") => database = Some(parser.value()?.string()?),
            Long("admin-token") => token = Some(parser.value()?.string()?),
            Long("body-limit") => {
                let v = parser.value()?.string()?;
                config.body_limit = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Usage(format!("--body-limit: '{v}' is not a positive number of bytes")))?;
            }
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(EXIT_OK);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    config.admin_listen = flag_or_env(listen, ENV_ADMIN_LISTEN, DEFAULT_ADMIN_LISTEN);
    config.database = flag_or_env(database, ENV_DATABASE, DEFAULT_DATABASE);
    config.admin_token = token.or_else(|| std::env::var(ENV_ADMIN_TOKEN).ok()).filter(|t| !t.is_empty());
    match runtime()?.block_on(consumer_auth_service::serve(config)) {
        Ok(()) => Ok(EXIT_OK),
        Err(e) => {
            eprintln!("consumer-auth serve: {e}");
            Ok(EXIT_REFUSED)
        }
    }
}

fn run_migrate(parser: &mut lexopt::Parser) -> Result<i32, Usage> {
    let mut database = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("database") => database = Some(parser.value()?.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let database = flag_or_env(database, ENV_DATABASE, consumer_auth_service::DEFAULT_DATABASE);
    let result = runtime()?.block_on(async {
        let store = consumer_auth_service::serve::open_migrated(&database, Default::default()).await?;
        store.current_version().await.map_err(|_| "cannot read the change log's version".to_string())
    });
    match result {
        Ok(version) => {
            println!("migrated; change log at version {version}");
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("consumer-auth migrate: {e}");
            Ok(EXIT_REFUSED)
        }
    }
}

fn run_import(parser: &mut lexopt::Parser) -> Result<i32, Usage> {
    let (mut file, mut database) = (None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("database") => database = Some(parser.value()?.string()?),
            Value(v) if file.is_none() => file = Some(v.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let file = file.ok_or_else(|| Usage("import: KONG_YAML is needed".into()))?;
    let database = flag_or_env(database, ENV_DATABASE, consumer_auth_service::DEFAULT_DATABASE);
    let bytes = read_input(&file).map_err(|e| Usage(format!("{file}: cannot read: {e}")))?;
    let result = runtime()?.block_on(consumer_auth_service::import::import_file(&database, &bytes));
    match result {
        Ok(report) => {
            println!("{file}: {report}");
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("consumer-auth import: {file}: {e}");
            Ok(EXIT_REFUSED)
        }
    }
}
