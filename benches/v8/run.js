// `make bench-v8`: per-check time of the filter's jwt signature code in node's V8, median of
// ROUNDS rounds (CPU time of this process, so other load on the machine counts less).
// Usage: node run.js consumer_auth_bench_v8.wasm [other build's .wasm ...]: several builds are
// measured round by round, alternated, in one process.
const fs = require('fs');
const ROUNDS = +(process.env.BENCH_V8_ROUNDS || 21);
const CASES = ['RS256 RSA-2048', 'RS256 RSA-3072', 'RS256 RSA-4096', 'ES256', 'ES384', 'EdDSA'];
const PER_ROUND = [200, 100, 50, 100, 20, 100];

function instantiate(path) {
  const module = new WebAssembly.Module(fs.readFileSync(path));
  // The filter's proxy-wasm and WASI imports are never called by these exports.
  const imports = {};
  for (const i of WebAssembly.Module.imports(module)) {
    (imports[i.module] ??= {})[i.name] = () => { throw new Error(`unexpected call to ${i.module}.${i.name}`); };
  }
  return new WebAssembly.Instance(module, imports).exports;
}

function cpuMicros(f) {
  const start = process.cpuUsage();
  f();
  const d = process.cpuUsage(start);
  return d.user + d.system;
}

const median = xs => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const builds = process.argv.slice(2).map(instantiate);
if (builds.length === 0) throw new Error('usage: node run.js <wasm> [<wasm> ...]');
const rows = [];
const check = (what, got, want) => { if (got !== want) throw new Error(`${what}: ${got} of ${want} verified`); };
for (let c = 0; c < CASES.length; c++) {
  const n = PER_ROUND[c];
  builds.forEach((b, i) => check(`${CASES[c]} (build ${i})`, b.verify(c, n), n)); // warm-up and check
  const times = builds.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    builds.forEach((b, i) => times[i].push(cpuMicros(() => check(CASES[c], b.verify(c, n), n)) / n));
  }
  rows.push([CASES[c], ...times.map(t => median(t).toFixed(1))]);
}
// A key's first check in a worker: parse + table + check, minus parse, minus a check.
for (const c of [3, 4]) {
  const n = c === 3 ? 20 : 5;
  const times = builds.map(() => ({ fresh: [], parse: [], check: [] }));
  builds.forEach(b => { check('fresh key', b.fresh_key_verify(c, n), n); b.parse_key(c, n); });
  for (let r = 0; r < Math.max(5, ROUNDS >> 2); r++) {
    builds.forEach((b, i) => {
      times[i].fresh.push(cpuMicros(() => check('fresh key', b.fresh_key_verify(c, n), n)) / n);
      times[i].parse.push(cpuMicros(() => b.parse_key(c, n)) / n);
      times[i].check.push(cpuMicros(() => check(CASES[c], b.verify(c, n), n)) / n);
    });
  }
  rows.push([`${CASES[c]} key's first check, extra`,
    ...times.map(t => (median(t.fresh) - median(t.parse) - median(t.check)).toFixed(1))]);
}
console.log(`node ${process.version} (V8 ${process.versions.v8}), median of ${ROUNDS} rounds, µs of CPU per check`);
console.log(`| case | ${process.argv.slice(2).map((p, i) => i === 0 ? 'this build' : `build ${i}`).join(' | ')} |`);
console.log(`|---|${builds.map(() => '---:').join('|')}|`);
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
