"""Per-target totals from `make fuzz`'s logs (`fuzz/target/logs/<target>.log`, appended run
after run): seconds fuzzed, executions, executions per second, coverage (libFuzzer's `cov:`
edges and `ft:` features at the end of the last run), the slowest input, and runs that found
something (a crash or a timeout ends a run early with a non-zero exit).

`stats.py <logs folder>`: one Markdown table row per target.
"""

import pathlib
import re
import sys

print("| target | runs | seconds | executions | exec/s | edges (`cov:`) | features (`ft:`) | slowest input | findings |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for log in sorted(pathlib.Path(sys.argv[1]).glob("*.log")):
    text = log.read_text(errors="replace")
    # `=== <start> <target> <budget> s [<start>]` ... `=== exit <code> [<end>]`
    runs = re.split(r"^=== \d\d:\d\d:\d\d \S+ ", text, flags=re.M)[1:]
    seconds = execs = 0
    cov = ft = "?"
    slowest = 0
    findings = []
    for run in runs:
        budget = int(run.split(" ", 1)[0])
        units = re.findall(r"stat::number_of_executed_units: (\d+)", run)
        execs += int(units[-1]) if units else 0
        # the run's wall time: its start and end stamps (a run that found something ends early)
        start = re.match(r"\d+ s (\d\d):(\d\d):(\d\d)", run)
        end = re.search(r"=== exit \d+ (\d\d):(\d\d):(\d\d)", run)
        if start and end:
            t0, t1 = (int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in (start.groups(), end.groups()))
            seconds += (t1 - t0) % 86400
        elif re.search(r"=== exit 0", run):
            seconds += budget
        for m in re.finditer(r"cov: (\d+) ft: (\d+)", run):
            cov, ft = m.groups()
        slow = re.findall(r"stat::slowest_unit_time_sec:\s+(\d+)", run)
        slowest = max([slowest] + [int(s) for s in slow])
        code = re.findall(r"=== exit (\d+)", run)
        if code and code[-1] != "0":
            kind = "timeout" if "libFuzzer: timeout" in run else "crash"
            findings.append(f"{kind} (exit {code[-1]})")
    rate = execs // seconds if seconds else 0
    print(f"| `{log.stem}` | {len(runs)} | {seconds} | {execs} | {rate} | {cov} | {ft} | {slowest} s | {', '.join(findings) or 'none'} |")
