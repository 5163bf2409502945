"""What the whole-request target reaches of the plugins (`make fuzz-coverage`).

`coverage.py <llvm-cov export JSON>`: for every plugin of `src/plugins/`, how many times its
entry point ran (`AuthPlugin::authenticate`, `Plugin::run`) and the line coverage of its file.
Exits non-zero when an entry point never ran: the target must reach every plugin.
"""

import json
import re
import sys

data = json.load(open(sys.argv[1]))["data"][0]
# v0-mangled: `..7plugins<len><module>..<len><Trait><len><method>`, the impl method itself (`_RNvX`),
# not a closure inside it (`_RNCNv`)
entry = re.compile(r"^_RNvX.*7plugins(\d+)(\w+?)N.*?(10AuthPlugin12authenticate|6Plugin3run)$")
runs = {}
for f in data["functions"]:
    m = entry.match(f["name"])
    if m:
        module = m.group(2)[: int(m.group(1))]
        runs[module] = runs.get(module, 0) + f["count"]
lines = {}
for f in data["files"]:
    m = re.search(r"src/plugins/(\w+)\.rs$", f["filename"])
    if m:
        s = f["summary"]["lines"]
        lines[m.group(1)] = (s["covered"], s["count"])
print(f"{'plugin':22} {'entry runs':>12} {'lines covered':>16}")
missing = []
for module in ["jwt", "key_auth", "basic_auth", "hmac_auth", "acl", "rate_limiting", "request_termination"]:
    covered, count = lines.get(module, (0, 0))
    print(f"{module:22} {runs.get(module, 0):>12} {covered:>7}/{count:<4} {100 * covered / max(count, 1):5.1f}%")
    if not runs.get(module):
        missing.append(module)
if missing:
    sys.exit(f"never reached: {', '.join(missing)}")
