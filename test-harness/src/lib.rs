//! `proxy-wasm-harness`: a proxy-wasm host (ABI 0.2.1, as used by the Rust SDK `proxy-wasm`
//! 0.2.5) on wasmtime, for testing filters end to end. Tests load a real filter `.wasm`,
//! configure one or more filter instances, send requests through a chain of them and observe
//! the resulting state (local responses, what went upstream, logs, metrics, shared data,
//! pending http calls, host-call counts). See `README.md`.

// The workspace's lints ([workspace.lints]) hold here too, but for these two: this is a test
// host, and a test host fails the test that misuses it the way a test fails — its assertion
// helpers (`Exchange::assert_no_trap`, answering a pending call that does not exist) panic, and
// it indexes its own tables and guest buffers it has just sized.
#![allow(clippy::panic, clippy::indexing_slicing)]

mod flow;
mod hostcalls;
mod kong;
pub mod maps;
mod mem;
mod seeds;
mod state;
mod types;
mod wasi;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use wasmtime::{Engine, Instance, Linker, Module, Store, Val};

use state::{RootInfo, VmData, World};
pub use types::*;

/// Process-wide engine: compiled modules are cached per file and shared by all hosts.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::default)
}

type CacheKey = (PathBuf, Option<SystemTime>, u64);

/// Compiles (once per path + modification time + size) the module at `path`.
fn cached_module(path: &Path) -> anyhow::Result<Module> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Module>>> = OnceLock::new();
    let canonical = path.canonicalize().with_context(|| format!("cannot find wasm module {}", path.display()))?;
    let meta = std::fs::metadata(&canonical)?;
    let key = (canonical.clone(), meta.modified().ok(), meta.len());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(m) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(m.clone());
    }
    let bytes = std::fs::read(&canonical).with_context(|| format!("reading {}", canonical.display()))?;
    let module = Module::from_binary(engine(), &bytes)
        .map_err(|e| anyhow!("compiling wasm module {}: {e:?}", canonical.display()))?;
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, module.clone());
    Ok(module)
}

pub(crate) struct Vm {
    pub store: Store<VmData>,
    pub instance: Instance,
    /// Set after a trap: like Envoy, a VM that crashed is not used again.
    pub failed: Option<String>,
}

/// One proxy-wasm host: one or more VMs (wasm instances of the same module, each with a
/// fresh `Store`) plus the state they share: shared data, shared queues, metrics, clock, logs.
pub struct Host {
    module: Module,
    linker: Linker<VmData>,
    pub(crate) vms: Vec<Vm>,
    pub(crate) world: Arc<Mutex<World>>,
    next_ctx: u32,
    /// Mirror of the world's logs, so that `logs()` can return a slice.
    logs: Vec<LogLine>,
}

impl Host {
    /// Loads (compiling once per process) the module and starts its first VM (`_initialize`).
    pub fn load(wasm_path: impl AsRef<Path>) -> anyhow::Result<Host> {
        let module = cached_module(wasm_path.as_ref())?;
        let mut linker = Linker::new(engine());
        wasi::add_to_linker(&mut linker).map_err(|e| anyhow!("{e:?}"))?;
        hostcalls::add_to_linker(&mut linker, engine()).map_err(|e| anyhow!("{e:?}"))?;
        let mut host = Host {
            module,
            linker,
            vms: Vec::new(),
            world: Arc::new(Mutex::new(World::new())),
            next_ctx: 1,
            logs: Vec::new(),
        };
        host.new_vm()?;
        Ok(host)
    }

    pub(crate) fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Instantiates a new VM of the module and returns its index.
    fn new_vm(&mut self) -> anyhow::Result<usize> {
        let vm = self.vms.len();
        let data = VmData { world: self.world.clone(), vm, effective_ctx: 0, memory: None, alloc: None };
        let mut store = Store::new(engine(), data);
        let missing: Vec<String> = self
            .module
            .imports()
            .filter(|imp| self.linker.get_by_import(&mut store, imp).is_none())
            .map(|imp| format!("{}::{} ({:?})", imp.module(), imp.name(), imp.ty()))
            .collect();
        if !missing.is_empty() {
            bail!("the wasm module imports functions this harness does not provide: {}", missing.join(", "));
        }
        let instance = self
            .linker
            .instantiate(&mut store, &self.module)
            .map_err(|e| anyhow!("instantiating the wasm module: {e:?}"))?;
        let exports: Vec<String> = self.module.exports().map(|e| e.name().to_string()).collect();
        if !exports.iter().any(|e| e.starts_with("proxy_abi_version_0_2_")) {
            bail!("the module does not export proxy_abi_version_0_2_1 (not a proxy-wasm 0.2.x module?)");
        }
        let memory =
            instance.get_memory(&mut store, "memory").ok_or_else(|| anyhow!("the module exports no memory"))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .map_err(|e| anyhow!("the module must export proxy_on_memory_allocate(i32) -> i32: {e:?}"))?;
        store.data_mut().memory = Some(memory);
        store.data_mut().alloc = Some(alloc);
        if let Some(init) = instance.get_func(&mut store, "_initialize") {
            init.call(&mut store, &[], &mut []).map_err(|e| anyhow!("_initialize trapped: {e:?}"))?;
        }
        self.vms.push(Vm { store, instance, failed: None });
        self.sync_logs();
        Ok(vm)
    }

    pub(crate) fn next_context_id(&mut self) -> u32 {
        let id = self.next_ctx;
        self.next_ctx += 1;
        id
    }

    pub(crate) fn sync_logs(&mut self) {
        let w = self.world.lock().unwrap_or_else(|e| e.into_inner());
        if w.logs.len() > self.logs.len() {
            self.logs.extend_from_slice(&w.logs[self.logs.len()..]);
        }
    }

    /// Calls an exported callback on `vm` with `ctx` as the effective context.
    /// A missing export is a no-op returning `None`; a trap marks the VM failed.
    pub(crate) fn call(&mut self, vm: usize, ctx: u32, name: &str, args: &[i32]) -> Result<Option<i32>, String> {
        let Some(v) = self.vms.get_mut(vm) else {
            return Err(format!("harness: no VM #{vm}"));
        };
        if let Some(f) = &v.failed {
            return Err(format!("VM previously failed: {f}"));
        }
        let Some(func) = v.instance.get_func(&mut v.store, name) else {
            return Ok(None);
        };
        v.store.data_mut().effective_ctx = ctx;
        {
            let mut w = self.world.lock().unwrap_or_else(|e| e.into_inner());
            w.callback.clear();
            w.callback.push_str(name);
        }
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let mut results = vec![Val::I32(0); func.ty(&v.store).results().len()];
        match func.call(&mut v.store, &params, &mut results) {
            Ok(()) => Ok(results.first().and_then(Val::i32)),
            Err(e) => {
                let msg = format!("{name} trapped: {e:?}");
                v.failed = Some(msg.clone());
                Err(msg)
            }
        }
    }

    /// Sets the clock (`proxy_get_current_time_nanoseconds`, WASI `clock_time_get`).
    /// Default: 2026-01-01T00:00:00Z, and it only moves when told to.
    pub fn set_time(&mut self, t: SystemTime) {
        let nanos = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        self.world().clock_nanos = nanos.min(u64::MAX as u128) as u64;
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, d: Duration) {
        let mut w = self.world();
        w.clock_nanos = w.clock_nanos.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64);
    }

    /// The current clock value.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.world().clock_nanos)
    }

    /// Level returned by `proxy_get_log_level` (default Trace). All logs are recorded anyway.
    pub fn set_log_level(&mut self, level: LogLevel) {
        self.world().log_level = level;
    }

    /// VM configuration (`BufferType::VmConfiguration`, size passed to `proxy_on_vm_start`).
    pub fn set_vm_configuration(&mut self, config: &[u8]) {
        self.world().vm_config = config.to_vec();
    }

    /// Creates and configures one filter instance (root context) in the shared VM:
    /// `proxy_on_context_create(root, 0)`, `proxy_on_vm_start(root, vm_config_size)`,
    /// `proxy_on_configure(root, config_size)`.
    pub fn configure(&mut self, config_json: &str) -> Result<FilterId, ConfigureError> {
        self.configure_in(0, "", config_json.as_bytes())
    }

    /// Like [`Host::configure`] with a plugin root id (the `plugin_root_id` property).
    pub fn configure_with_root_id(&mut self, root_id: &str, config: &str) -> Result<FilterId, ConfigureError> {
        self.configure_in(0, root_id, config.as_bytes())
    }

    /// Like [`Host::configure`], but the instance gets its own, fresh VM (one VM per filter
    /// instance). Shared data, queues, metrics, clock and logs stay shared by the whole `Host`.
    pub fn configure_isolated(&mut self, config_json: &str) -> Result<FilterId, ConfigureError> {
        let vm = self.new_vm().map_err(|e| ConfigureError { message: format!("{e:#}"), logs: Vec::new() })?;
        self.configure_in(vm, "", config_json.as_bytes())
    }

    /// Like [`Host::configure`], in the VM of `beside` (several instances of one worker's VM
    /// when each worker has its own, see [`Host::configure_isolated`]).
    pub fn configure_beside(&mut self, beside: FilterId, config_json: &str) -> Result<FilterId, ConfigureError> {
        self.configure_in(beside.vm, "", config_json.as_bytes())
    }

    fn configure_in(&mut self, vm: usize, root_id: &str, config: &[u8]) -> Result<FilterId, ConfigureError> {
        seeds::config(config);
        let root = self.next_context_id();
        let (log_start, vm_config_len) = {
            let mut w = self.world();
            w.roots.insert(root, RootInfo { vm, config: config.to_vec(), root_id: root_id.to_string(), tick_ms: 0 });
            (w.logs.len(), w.vm_config.len() as i32)
        };
        let steps: [(&str, Vec<i32>, bool); 3] = [
            ("proxy_on_context_create", vec![root as i32, 0], false),
            ("proxy_on_vm_start", vec![root as i32, vm_config_len], true),
            ("proxy_on_configure", vec![root as i32, config.len() as i32], true),
        ];
        let mut failure = None;
        for (name, args, check) in steps {
            match self.call(vm, root, name, &args) {
                Err(trap) => {
                    failure = Some(trap);
                    break;
                }
                Ok(Some(0)) if check => {
                    failure = Some(format!("{name} returned false"));
                    break;
                }
                Ok(_) => {}
            }
        }
        self.sync_logs();
        match failure {
            None => Ok(FilterId { vm, root }),
            Some(message) => {
                let mut w = self.world();
                w.roots.remove(&root);
                Err(ConfigureError { message, logs: w.logs[log_start..].to_vec() })
            }
        }
    }

    /// All logs recorded by this host (configure, requests, ticks, http call responses).
    /// Each VM's linear memory in bytes (wasm memory never shrinks: its high-water mark).
    pub fn memory_sizes(&self) -> Vec<usize> {
        self.vms.iter().map(|v| v.store.data().memory.map_or(0, |m| m.data_size(&v.store))).collect()
    }

    pub fn logs(&self) -> &[LogLine] {
        &self.logs
    }

    /// Value of a metric by name (counter/gauge value, last recorded histogram value).
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.world().metrics.iter().find(|m| m.name == name).map(|m| m.value)
    }

    pub fn metrics(&self) -> Vec<(String, MetricKind, u64)> {
        self.world().metrics.iter().map(|m| (m.name.clone(), m.kind, m.value)).collect()
    }

    /// Shared data value and its CAS.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.world().shared_data.get(key.as_bytes()).cloned()
    }

    /// Every shared-data key, sorted (lossy UTF-8).
    pub fn shared_data_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> =
            self.world().shared_data.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
        keys.sort();
        keys
    }

    /// Sets shared data from the test (gets a fresh CAS, like a set from the module).
    pub fn set_shared_data(&mut self, key: &str, value: &[u8]) {
        let mut w = self.world();
        let cas = w.next_cas();
        w.shared_data.insert(key.as_bytes().to_vec(), (value.to_vec(), cas));
    }

    /// A property visible to every context (looked up after per-request ones); dot-separated path.
    pub fn set_property(&mut self, path: &str, value: &[u8]) {
        let key = path.replace('.', "\0").into_bytes();
        self.world().host_properties.insert(key, value.to_vec());
    }

    /// From now on `proxy_set_property` of this dot-separated path fails with NotFound, as on a
    /// host that does not let filters set it (ngx_wasm_module outside its namespaces).
    pub fn refuse_property_set(&mut self, path: &str) {
        self.world().refused_property_sets.push(path.replace('.', "\0").into_bytes());
    }

    /// Behave as Kong 3.9's ngx_wasm_module where it differs from Envoy: the model of that
    /// host (README, "Kong mode"; `kong.rs`). Observed on a real build: a request header cannot
    /// be removed (nginx forwards it), a duplicated one replaced is zeroed whole; `request.query`
    /// sets `$args` (the upstream query) but not the cached `:path`, a new `:path` with a query
    /// works; a failed `proxy_http_call` is reported with `:dispatch_status`; calls go to
    /// `host:port` from the request, tick and call-response callbacks only; gRPC calls trap; the
    /// request body comes whole, once, after every header callback (which never has
    /// end_of_stream), and a pause there holds it for ever; a trap answers 500 (and metrics,
    /// recorded here, are not exported by plain nginx). Read from its sources:
    /// `proxy_set_shared_data` with CAS 0 only creates; a read of the HTTP call response body
    /// ignores its offset; `request.id` is the client's X-Request-Id, `ngx.kong_request_id`
    /// Kong's id; only `kong.*`, `ngx.*` and `request.query` can be set. Older Kong:
    /// [`Host::kong_before_3_9`]. Set `xds.node` too and the filter would take the host for
    /// Envoy: Kong has no such property.
    pub fn kong_quirks(&mut self) {
        self.world().kong_quirks = true;
    }

    /// Kong without the filter's `shm_kv` zone (no `nginx_wasm_shm_kv_consumer_auth`): every
    /// shared-data call traps ("could not resolve namespace"), in `proxy_on_configure` too.
    pub fn kong_without_shm_kv(&mut self) {
        self.world().kong_no_shm_kv = true;
    }

    /// Kong before 3.9 (read from ngx_wasm_module's sources, never run here): setting a `:path`
    /// with a query string traps ("NYI"), and so do the metric functions (not implemented in
    /// Kong 3.4–3.7).
    pub fn kong_before_3_9(&mut self) {
        self.world().kong_before_3_9 = true;
    }

    /// Compiles the module as a runtime with WebAssembly SIMD turned off would (Kong's
    /// `wasm_simd off`): a module that uses SIMD is refused whole, at load time.
    pub fn compile_without_simd(wasm_path: impl AsRef<Path>) -> anyhow::Result<()> {
        let mut config = wasmtime::Config::new();
        config.wasm_relaxed_simd(false);
        config.wasm_simd(false);
        let engine = Engine::new(&config).map_err(|e| anyhow!("{e:?}"))?;
        let bytes = std::fs::read(wasm_path.as_ref())?;
        Module::from_binary(&engine, &bytes).map(|_| ()).map_err(|e| anyhow!("{e:?}"))
    }

    /// Behave as Envoy without `allow_on_headers_stop_iteration` (before 1.35, or under a control
    /// plane that does not expose it): a Pause from the request-header callback stops the whole
    /// request, so no request body callback comes until the filter resumes it. By default the
    /// harness behaves as Envoy with it: the headers are held and each body chunk is delivered.
    pub fn without_stop_iteration(&mut self) {
        self.world().pause_holds_body = true;
    }

    /// Number of calls of each `proxy_*` import over the whole life of this host.
    pub fn host_calls(&self) -> std::collections::BTreeMap<String, u32> {
        self.world().host_calls.clone()
    }

    /// Tick period (ms) requested by a filter instance, 0 if none.
    pub fn tick_period(&self, filter: FilterId) -> u32 {
        self.world().roots.get(&filter.root).map(|r| r.tick_ms).unwrap_or(0)
    }

    /// The failure (trap) of the first failed VM, if any. A failed VM is never called again.
    pub fn vm_failure(&self) -> Option<String> {
        self.vms.iter().find_map(|v| v.failed.clone())
    }

    /// Http calls dispatched with `proxy_http_call` and not answered yet, by token order.
    pub fn pending_http_calls(&self) -> Vec<HttpCall> {
        self.world().calls.values().map(|p| p.call.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `proxy_*` import of the Rust SDK proxy-wasm 0.2.5 (hostcalls.rs) is provided.
    #[test]
    fn linker_provides_every_sdk_import() {
        let mut linker: Linker<VmData> = Linker::new(engine());
        wasi::add_to_linker(&mut linker).unwrap();
        hostcalls::add_to_linker(&mut linker, engine()).unwrap();
        let data =
            VmData { world: Arc::new(Mutex::new(World::new())), vm: 0, effective_ctx: 0, memory: None, alloc: None };
        let mut store = Store::new(engine(), data);
        let sdk = [
            "proxy_log",
            "proxy_get_log_level",
            "proxy_get_current_time_nanoseconds",
            "proxy_set_tick_period_milliseconds",
            "proxy_get_buffer_bytes",
            "proxy_set_buffer_bytes",
            "proxy_get_header_map_pairs",
            "proxy_set_header_map_pairs",
            "proxy_get_header_map_value",
            "proxy_remove_header_map_value",
            "proxy_replace_header_map_value",
            "proxy_add_header_map_value",
            "proxy_get_property",
            "proxy_set_property",
            "proxy_get_shared_data",
            "proxy_set_shared_data",
            "proxy_register_shared_queue",
            "proxy_resolve_shared_queue",
            "proxy_dequeue_shared_queue",
            "proxy_enqueue_shared_queue",
            "proxy_continue_stream",
            "proxy_close_stream",
            "proxy_send_local_response",
            "proxy_http_call",
            "proxy_grpc_call",
            "proxy_grpc_stream",
            "proxy_grpc_send",
            "proxy_grpc_cancel",
            "proxy_grpc_close",
            "proxy_get_status",
            "proxy_set_effective_context",
            "proxy_call_foreign_function",
            "proxy_done",
            "proxy_define_metric",
            "proxy_get_metric",
            "proxy_record_metric",
            "proxy_increment_metric",
        ];
        for name in sdk {
            assert!(linker.get(&mut store, "env", name).is_ok(), "missing env::{name}");
        }
        for name in [
            "fd_write",
            "environ_get",
            "environ_sizes_get",
            "random_get",
            "clock_time_get",
            "proc_exit",
            "args_get",
            "args_sizes_get",
            "fd_close",
            "fd_seek",
            "fd_fdstat_get",
            "fd_prestat_get",
            "fd_prestat_dir_name",
            "sched_yield",
        ] {
            assert!(linker.get(&mut store, "wasi_snapshot_preview1", name).is_ok(), "missing wasi {name}");
        }
    }
}
