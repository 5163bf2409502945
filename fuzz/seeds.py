"""Sort seeds into the fuzz targets' corpus folders (`make fuzz-seeds`, before `make fuzz-cmin`).

`seeds.py <seeds> <corpus>`: <seeds> holds what the harness wrote (`request/`, `config/`,
`consumers/`: test-harness/src/seeds.rs) and what `fuzz/examples/seeds.rs` wrote (a folder per
target). Requests go to every target that reads one (the identity target after an empty handoff
line, the body target as `content-type\\nbody`), documents to `config` and `consumers_stream`,
with tests/invalid-configs and examples/ beside them.
"""

import hashlib
import pathlib
import sys

REQUEST_TARGETS = ["request_view", "key_auth", "basic_auth", "hmac_auth", "jwt", "whole_request"]
seeds, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
root = pathlib.Path(__file__).resolve().parent.parent


def put(target: str, content: bytes) -> None:
    folder = corpus / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(content).hexdigest()).write_bytes(content)


def files(folder: pathlib.Path):
    return sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []


for path in files(seeds / "request"):
    request = path.read_bytes()
    for target in REQUEST_TARGETS:
        put(target, request)
    put("identity", b"\n" + request)
    head, sep, body = request.partition(b"\n\n")
    if sep:
        for line in head.split(b"\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-type":
                put("body", value.strip() + b"\n" + body)

documents = files(seeds / "config") + files(root / "tests/invalid-configs") + files(root / "examples")
for path in documents:
    put("config", path.read_bytes())
    put("consumers_stream", path.read_bytes())
for path in files(seeds / "consumers"):
    put("consumers_stream", path.read_bytes())

for folder in sorted(p for p in seeds.iterdir() if p.is_dir() and p.name not in ("request", "config", "consumers")):
    for path in files(folder):
        put(folder.name, path.read_bytes())
