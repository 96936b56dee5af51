"""The bench runner behind tools/bench: runs every scenario of bench/budgets.json, collects
their JSON into one results file, judges the budgets, prints one table and plots the latency
distributions. The contract a scenario binary keeps is in bench/README.md.

Standard library only (Debian's /usr/bin/python3); the plot needs gnuplot.
"""

import argparse
import datetime
import json
import operator
import os
import re
import shutil
import subprocess
import sys
import time

COMPARISONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def gbench_metrics(report):
    """Google Benchmark JSON to {name: metric}: each user counter, and the time per iteration."""
    metrics = {}
    for run in report.get("benchmarks", []):
        if run.get("run_type") == "aggregate" or run.get("error_occurred"):
            continue
        name = run["name"]
        known = {"name", "family_index", "per_family_instance_index", "run_name", "run_type",
                 "repetitions", "repetition_index", "threads", "iterations", "real_time",
                 "cpu_time", "time_unit", "label", "error_occurred", "error_message"}
        for key, value in run.items():
            if key not in known and isinstance(value, (int, float)):
                metrics[f"{name}/{key}"] = {"value": value, "unit": "", "higher_is_better": True}
        metrics[f"{name}/real_time_{run['time_unit']}"] = {
            "value": run["real_time"], "unit": run["time_unit"], "higher_is_better": False}
    errors = [f"{run['name']}: {run.get('error_message', '')}"
              for run in report.get("benchmarks", []) if run.get("error_occurred")]
    return metrics, errors


def run_scenario(scenario, build_dir, out_dir, quick, timeout):
    """Runs one scenario binary; its entry for results.json."""
    binary = os.path.join(build_dir, scenario["binary"])
    entry = {"title": scenario.get("title", ""), "binary": scenario["binary"]}
    if not os.path.isfile(binary):
        entry["status"] = "not measured"
        entry["errors"] = [f"{scenario['binary']} is not built (the scenario does not exist yet)"]
        return entry
    args = [binary]
    gbench_out = None
    if scenario.get("format") == "gbench":
        # A file rather than stdout: some of them print through a console reporter of their own.
        gbench_out = os.path.join(out_dir, f"{scenario['name']}.gbench.json")
        args += [f"--benchmark_out={gbench_out}", "--benchmark_out_format=json"]
        if quick:
            args += scenario.get("quick_args", [])
    elif quick:
        args += ["--quick"]
    args += scenario.get("args", [])
    entry["command"] = " ".join([scenario["binary"]] + args[1:])
    entry["load_before"] = load_average()
    started = time.monotonic()
    print(f"bench: {scenario['name']}: {entry['command']} (load {entry['load_before']})",
          file=sys.stderr, flush=True)
    try:
        done = subprocess.run(args, stdout=sys.stderr if gbench_out else subprocess.PIPE,
                              stderr=sys.stderr, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        entry.update(status="failed", errors=[f"timed out after {timeout} s"])
        return entry
    entry["seconds"] = round(time.monotonic() - started, 1)
    entry["load_after"] = load_average()
    try:
        if gbench_out:
            with open(gbench_out) as f:
                report = json.load(f)
        else:
            report = json.loads(done.stdout)
    except (OSError, json.JSONDecodeError) as e:
        entry.update(status="failed", errors=[f"exit {done.returncode}, output is not JSON: {e}"])
        return entry
    if scenario.get("format") == "gbench":
        entry["metrics"], entry["errors"] = gbench_metrics(report)
        entry["context"] = report.get("context", {})
    else:
        entry["metrics"] = report.get("metrics", {})
        entry["distributions"] = report.get("distributions", {})
        entry["series"] = report.get("series", {})
        entry["errors"] = report.get("errors", [])
    if done.returncode != 0:
        entry["errors"].append(f"exited with {done.returncode}")
    entry["status"] = "failed" if entry["errors"] else "measured"
    return entry


def judge(budget, scenarios):
    """A budget's row: value, ceiling, ratio and verdict."""
    row = dict(budget)
    scenario = scenarios.get(budget["scenario"], {})
    metric = scenario.get("metrics", {}).get(budget["metric"])
    if metric is None:
        row["result"] = "not measured"
        return row
    row["value"] = metric["value"]
    row.setdefault("unit", metric.get("unit", ""))
    ceiling = metric.get("ceiling")
    if ceiling:
        row["ceiling"] = ceiling
        row["ratio"] = metric["value"] / ceiling
    if budget["kind"] == "ratio":
        if "ratio" not in row:
            row["result"] = "no ceiling"
            return row
        judged = row["ratio"]
    else:
        judged = metric["value"]
    row["result"] = "pass" if COMPARISONS[budget["comparison"]](judged, budget["limit"]) else "FAIL"
    return row


def number(value):
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(rows):
    headers = ["metric", "value", "budget", "ceiling", "ratio", "result"]
    lines = [[r["name"], r["value"], r["budget"], r["ceiling"], r["ratio"], r["result"]] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
           "  ".join("-" * w for w in widths)]
    for line in lines:
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths)))
    return "\n".join(out)


def table_rows(config, scenarios, judged):
    """Every budget, then every other figure of the end-to-end scenarios, then a line for each
    scenario that could not be measured."""
    rows = []
    budgeted = set()
    for row in judged:
        budgeted.add((row["scenario"], row["metric"]))
        ratio_text = number(row.get("ratio"))
        budget_text = (f"{row['comparison']} {row['limit']:g}x ceiling" if row["kind"] == "ratio"
                       else f"{row['comparison']} {row['limit']:g} {row.get('unit', '')}".rstrip())
        rows.append({"name": f"{row['scenario']}: {row['metric']}", "value": number(row.get("value")),
                     "budget": budget_text, "ceiling": number(row.get("ceiling")),
                     "ratio": ratio_text, "result": row["result"]})
    for scenario in config["scenarios"]:
        name = scenario["name"]
        entry = scenarios[name]
        if entry["status"] == "not measured":
            if not any(r["scenario"] == name for r in judged):
                rows.append({"name": f"{name}: (whole scenario)", "value": "-", "budget": "-",
                             "ceiling": "-", "ratio": "-", "result": "not measured"})
            continue
        if entry.get("errors"):
            rows.append({"name": f"{name}: (errors, listed below)", "value": "-", "budget": "-",
                         "ceiling": "-", "ratio": "-", "result": "FAIL"})
        if scenario.get("format") == "gbench":
            continue  # their figures are in results.json; the table keeps to the scenarios
        for metric_name, metric in entry.get("metrics", {}).items():
            if (name, metric_name) in budgeted or metric.get("detail"):
                continue
            ceiling = metric.get("ceiling")
            rows.append({"name": f"{name}: {metric_name}",
                         "value": number(metric["value"]) + (f" {metric['unit']}" if metric.get("unit") else ""),
                         "budget": "-", "ceiling": number(ceiling),
                         "ratio": number(metric["value"] / ceiling) if ceiling else "-", "result": "-"})
    return rows


def micro_table(config, scenarios):
    lines = []
    for scenario in config["scenarios"]:
        if scenario.get("format") != "gbench":
            continue
        entry = scenarios[scenario["name"]]
        for metric_name, metric in entry.get("metrics", {}).items():
            if metric_name.rsplit("/", 1)[-1].startswith("real_time_"):
                continue  # time per iteration: in results.json
            lines.append(f"  {scenario['name']}: {metric_name} = {number(metric['value'])}")
    return "\n".join(lines)


def _data_file(out_dir, label, rows):
    """Writes `rows` of (x, y) for gnuplot in plot-data/; its path."""
    data_dir = os.path.join(out_dir, "plot-data")
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, re.sub(r"[^A-Za-z0-9_.-]", "_", label) + ".dat")
    with open(path, "w") as f:
        for x, y in rows:
            f.write(f"{x} {y}\n")
    return path


def _render(gnuplot, png, height, commands):
    """Runs gnuplot's `commands` into `png`, 1400 pixels wide; the PNG's path, or None."""
    if gnuplot is None:
        print("bench: gnuplot is missing; no plot", file=sys.stderr)
        return None
    terminal = "pngcairo" if _has_cairo(gnuplot) else "png"
    script = [f"set terminal {terminal} size 1400,{height} noenhanced", f"set output '{png}'"] + commands
    subprocess.run([gnuplot], input="\n".join(script) + "\n", text=True, check=False)
    return png if os.path.isfile(png) else None


def plot(scenarios, out_dir):
    """One PNG per scenario: the CDF of every latency distribution it reported."""
    gnuplot = shutil.which("gnuplot")
    written = []
    for name, entry in scenarios.items():
        distributions = entry.get("distributions") or {}
        if not distributions:
            continue
        series = []
        unit = ""
        for dist_name, dist in sorted(distributions.items()):
            unit = dist.get("unit", unit)
            rows = [(value, percentile) for percentile, value in sorted(dist["cdf"])]
            series.append((dist_name, _data_file(out_dir, f"{name}-{dist_name}", rows)))
        png = _render(gnuplot, os.path.join(out_dir, f"{name}-latency.png"), 900, [
            f"set title '{name}: latency distribution per request (CDF)'",
            f"set xlabel 'latency ({unit}), log scale'",
            "set ylabel 'percentile'",
            "set logscale x", "set grid", "set key outside right top",
            # gnuplot repeats its 8 colours: a new dash pattern for every 8 series keeps them apart.
            "plot " + ", ".join(f"'{path}' using 1:2 with lines lw 2 lc {i % 8 + 1} dt {i // 8 + 1} title '{title}'"
                                for i, (title, path) in enumerate(series)),
        ])
        if png:
            written.append(png)
    return written


def plot_over_time(scenarios, out_dir):
    """One PNG per scenario that reported series: each figure over the run, one panel per unit."""
    gnuplot = shutil.which("gnuplot")
    written = []
    for name, entry in scenarios.items():
        panels = {}
        for series_name, series in sorted((entry.get("series") or {}).items()):
            if not series["points"]:
                continue  # gnuplot cannot draw an empty series
            path = _data_file(out_dir, f"{name}-{series_name}-over-time", series["points"])
            panels.setdefault(series.get("unit", ""), []).append((series_name, path))
        if not panels:
            continue
        commands = [f"set multiplot layout {len(panels)},1 title '{name}: over the run'",
                    "set grid", "set key outside right top", "set xlabel 'seconds since the run began'"]
        for unit, lines in sorted(panels.items()):
            commands.append(f"set ylabel '{unit}'")
            commands.append("plot " + ", ".join(
                f"'{path}' using 1:2 with linespoints pt 7 ps 0.4 lc {i % 8 + 1} title '{title}'"
                for i, (title, path) in enumerate(lines)))
        commands.append("unset multiplot")
        png = _render(gnuplot, os.path.join(out_dir, f"{name}-over-time.png"), 300 * len(panels) + 100, commands)
        if png:
            written.append(png)
    return written


def _has_cairo(gnuplot):
    terminals = subprocess.run([gnuplot, "-e", "set terminal"], capture_output=True, text=True)
    return "pngcairo" in terminals.stdout + terminals.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    options = parser.parse_args()

    with open(os.path.join(options.root, "bench", "budgets.json")) as f:
        config = json.load(f)
    only = set(filter(None, options.only.split(",")))
    timeout = 300 if options.quick else 1800
    os.makedirs(options.out, exist_ok=True)

    results = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": options.quick, "cpus": os.cpu_count(), "load_before": load_average(),
        "scenarios": {},
    }
    for scenario in config["scenarios"]:
        if only and scenario["name"] not in only:
            continue
        results["scenarios"][scenario["name"]] = run_scenario(scenario, options.build_dir, options.out, options.quick, timeout)
    results["load_after"] = load_average()
    config["scenarios"] = [s for s in config["scenarios"] if s["name"] in results["scenarios"]]
    judged = [judge(b, results["scenarios"]) for b in config["budgets"] if b["scenario"] in results["scenarios"]]
    results["budgets"] = judged

    rows = table_rows(config, results["scenarios"], judged)
    text = table(rows)
    micro = micro_table(config, results["scenarios"])
    header = (f"Sigil bench{' --quick' if options.quick else ''}, {results['started']}, "
              f"{results['cpus']} CPUs, load {results['load_before']} before, {results['load_after']} after")
    print(header)
    print(text)
    errors = [f"  {name}: {error}" for name, entry in results["scenarios"].items()
              for error in entry.get("errors", [])]
    if errors:
        print("\nerrors and scenarios not measured:")
        print("\n".join(errors))
    if micro:
        print("\nmicro-benchmarks (counters; all figures in results.json):")
        print(micro)
    with open(os.path.join(options.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(options.out, "table.txt"), "w") as f:
        f.write(header + "\n" + text + "\n")
    for png in plot(results["scenarios"], options.out) + plot_over_time(results["scenarios"], options.out):
        print(f"plot: {png}")
    print(f"results: {os.path.join(options.out, 'results.json')}")

    missed = [r for r in rows if r["result"] not in ("pass", "-")]
    if missed:
        print(f"bench: {len(missed)} budget(s) missed, failed or not measured", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
