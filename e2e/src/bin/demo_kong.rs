//! `make demo-kong`: the `make demo` walkthrough (Kong's anonymous-access docs, then hmac-auth and
//! jwt) through Kong's proxy-wasm host (nginx + ngx_wasm_module at Kong 3.9's commit, two
//! workers; `make kong-host`), with the same routes as `envoy/demo.yaml`; then serves on
//! localhost:8000 until Ctrl-C. `demo_kong --once`: exit after the walkthrough, 0 only if every
//! step gave the expected answer.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use consumer_auth_e2e::demo::{self, LISTENER_PORT, UPSTREAM_PORT};
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::kong::{Kong, KongConfig};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let once = std::env::args().skip(1).any(|a| a == "--once");
    let wasm = consumer_auth_e2e::filter_wasm().display().to_string();
    let _upstream = match EchoServer::start_on(UPSTREAM_PORT) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("demo-kong: cannot start the echo upstream on 127.0.0.1:{UPSTREAM_PORT}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let routes = demo::bootstrap(LISTENER_PORT, 0, UPSTREAM_PORT, &wasm).routes;
    let mut config = KongConfig::new(UPSTREAM_PORT).routes(routes);
    config.listen_port = LISTENER_PORT;
    println!("demo-kong: echo upstream on 127.0.0.1:{UPSTREAM_PORT}; starting nginx + ngx_wasm_module ...");
    let mut kong = match Kong::try_start(&config) {
        Ok(kong) => kong,
        Err(failure) => {
            eprintln!(
                "demo-kong: the Kong host did not start (exit status {:?}); its log:\n{}",
                failure.status, failure.log
            );
            return ExitCode::FAILURE;
        }
    };
    println!("demo-kong: Kong's host is ready on 127.0.0.1:{} (2 workers)", kong.port);
    let ok = demo::walkthrough(kong.port, &mut std::io::stdout());
    if once {
        drop(kong);
        return if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
    println!(
        "\nServing on http://localhost:{LISTENER_PORT} until Ctrl-C (the routes of `make demo`; try its curl lines)."
    );
    while !STOP.load(Ordering::SeqCst) {
        if !kong.is_running() {
            eprintln!("demo-kong: nginx exited; its log:\n{}", kong.log());
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\ndemo-kong: stopping");
    ExitCode::SUCCESS
}
