//! `make demo`: start the echo upstream and Envoy with `envoy/demo.yaml`, replay the
//! anonymous-access walkthrough of Kong's authentication docs and the hmac-auth and jwt steps,
//! then keep serving on localhost:8000 until Ctrl-C.
//!
//! `demo --once`: exit after the walkthrough, 0 only if every step gave the expected answer.
//! `demo --print-config`: print the demo bootstrap (the content of `envoy/demo.yaml`).
//! `demo --port PORT`: start nothing; replay the walkthrough against a proxy already serving the
//! demo's routes on 127.0.0.1:PORT (`make demo-compose`), exit 0 only if every step gave the
//! expected answer.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use consumer_auth_e2e::demo::{self, DEMO_WASM, DEMO_YAML, LISTENER_PORT, UPSTREAM_PORT};
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::fixtures::ALICE;
use consumer_auth_e2e::workspace_root;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--print-config") {
        print!("{}", demo::demo_yaml());
        return ExitCode::SUCCESS;
    }
    if let Some(i) = args.iter().position(|a| a == "--port") {
        let Some(port) = args.get(i + 1).and_then(|p| p.parse::<u16>().ok()) else {
            eprintln!("demo: --port needs a port number");
            return ExitCode::FAILURE;
        };
        println!("demo: the walkthrough against the proxy on 127.0.0.1:{port}");
        return if demo::walkthrough(port, &mut std::io::stdout()) { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let once = args.iter().any(|a| a == "--once");

    let root = workspace_root();
    let config = root.join(DEMO_YAML);
    if !root.join(DEMO_WASM).is_file() {
        eprintln!("demo: {DEMO_WASM} is missing; run `make build` (or `make demo`)");
        return ExitCode::FAILURE;
    }
    match std::fs::read_to_string(&config) {
        Ok(text) if text == demo::demo_yaml() => {}
        Ok(_) => eprintln!(
            "demo: warning: {DEMO_YAML} differs from what e2e/src/demo.rs renders; regenerate it with\n  \
             cargo run -q -p consumer-auth-e2e --bin demo -- --print-config > {DEMO_YAML}"
        ),
        Err(e) => {
            eprintln!("demo: cannot read {DEMO_YAML}: {e}");
            return ExitCode::FAILURE;
        }
    }

    let _upstream = match EchoServer::start_on(UPSTREAM_PORT) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("demo: cannot start the echo upstream on 127.0.0.1:{UPSTREAM_PORT}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("demo: echo upstream on 127.0.0.1:{UPSTREAM_PORT}; starting Envoy with {DEMO_YAML} ...");
    let mut envoy = match Envoy::start_file(&config, &root) {
        Ok(envoy) => envoy,
        Err(failure) => {
            eprintln!("demo: Envoy did not start (exit status {:?}); its log:\n{}", failure.status, failure.log);
            return ExitCode::FAILURE;
        }
    };
    println!("demo: Envoy is ready on 127.0.0.1:{} (admin 127.0.0.1:{})", envoy.port, envoy.admin_port);

    let ok = demo::walkthrough(envoy.port, &mut std::io::stdout());
    if once {
        drop(envoy);
        return if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }

    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
    let port = LISTENER_PORT;
    println!("\nServing on http://localhost:{port} until Ctrl-C. Try:");
    println!("  curl -i http://localhost:{port}/key");
    println!("  curl -i http://localhost:{port}/key -H 'apikey: {}'", ALICE.key());
    println!("  curl -i 'http://localhost:{port}/key?apikey={}'", ALICE.key());
    println!("  curl -i http://localhost:{port}/anon");
    println!(
        "  curl -i http://localhost:{port}/and -H 'apikey: {}' -u {}:{}",
        ALICE.key(),
        ALICE.basic_user(),
        ALICE.basic_password()
    );
    println!("  curl -i http://localhost:{port}/or -u {}:{}", ALICE.basic_user(), ALICE.basic_password());
    println!("  curl -i http://localhost:{port}/or-terminated");
    println!("  curl -i http://localhost:{port}/or-terminated -H 'apikey: {}'", ALICE.key());
    // hmac-auth and jwt need a signature / a token: the client helpers of docs/CLIENTS.md.
    let tools = "cargo run -q -p consumer-auth-tools --";
    println!(
        "  eval curl -i $({tools} hmac --user {} --secret '{}' --path /hmac --curl) http://localhost:{port}/hmac",
        ALICE.hmac_user(),
        ALICE.hmac_secret()
    );
    println!("  TOKEN=$({tools} jwt --key {} --secret '{}' --exp 3600)", ALICE.jwt_key(), ALICE.jwt_secret());
    println!("  curl -i http://localhost:{port}/jwt -H \"Authorization: Bearer $TOKEN\"");
    while !STOP.load(Ordering::SeqCst) {
        if !envoy.is_running() && !STOP.load(Ordering::SeqCst) {
            eprintln!("demo: Envoy exited; its log:\n{}", envoy.log());
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\ndemo: stopping");
    drop(envoy);
    ExitCode::SUCCESS
}
