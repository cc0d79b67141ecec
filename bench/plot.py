#!/usr/bin/env python3
# plot.py: PNG plots of the benchmark results with gnuplot: latency
# distributions (CDF) from the samples the benchmarks saved, and cost against
# tree size from the scale benchmark. See bench/README.md.
#
#   bench/plot.py [RESULTS_DIR]      # default: bench/results next to this file
#
# Reads what is there and plots it; a missing input skips its plots:
#   fs-samples.dat      -> fs-latency-cdf.png
#   scale-samples.dat   -> scale-stat-cdf.png, scale-read-cdf.png, scale-readdir-cdf.png
#   scale-cost.dat      -> scale-cost.png
#   repl-samples.json   -> repl-propagation-cdf.png, repl-throughput.png
#   mirror-commit-*.dat, mirror-lag.dat -> mirror.png
# Prints the PNGs it wrote; exit 1 if gnuplot is missing or fails.

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RES = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(HERE, "results")
TERM = "set terminal pngcairo size %d,%d font 'DejaVu Sans,9' noenhanced"
wrote = []


def blocks(path):
    """{label: index} of the data blocks of a samples file, as gnuplot's `index`
    counts them (two blank lines end a block); a block's label is the last
    comment line before its first data line."""
    out, idx, in_block, blank, label = {}, -1, False, 0, None
    for line in open(path):
        s = line.strip()
        if not s:
            blank += 1
            if blank >= 2:
                in_block = False
            continue
        blank = 0
        if s.startswith("#"):
            label = s[1:].strip()
        elif not in_block:
            idx += 1
            in_block = True
            out[label] = idx
    return out


def gnuplot(script, png):
    with tempfile.NamedTemporaryFile("w", suffix=".gp", delete=False) as f:
        f.write(script)
        name = f.name
    try:
        r = subprocess.run(["gnuplot", name], capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(name)
    if r.returncode != 0:
        sys.stderr.write("plot.py: gnuplot failed for %s:\n%s\n" % (png, r.stderr[-2000:]))
        sys.exit(1)
    wrote.append(png)


def q(s):
    return "'" + s.replace("'", "''") + "'"


COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def cdf_lines(path, items):
    """items: (block index, title, color, dash) -> the plot clauses of a CDF panel."""
    return ", ".join("%s index %d using 1:(1) smooth cnormal with lines lw 2 lc rgb '%s' dt %d title %s"
                     % (q(path), i, c, d, q(t)) for i, t, c, d in items)


# ---- fs-bench: one panel per operation, one line per file system

def plot_fs():
    path = os.path.join(RES, "fs-samples.dat")
    if not os.path.exists(path):
        return
    b = blocks(path)
    ops = [("stat", "stat (cached)"), ("open_read_close", "open+read 1 KiB+close"),
           ("reread", "pread 1 KiB of an open file"), ("create_write_close", "create+write 1 KiB+close"),
           ("write_fsync", "pwrite 1 KiB+fsync"), ("editor_save", "editor save (tmp, write, fsync, rename)"),
           ("unlink", "unlink"), ("mkdir", "mkdir"), ("readdir", "readdir of the big directory")]
    fss = [("tmpfs", COLORS[0]), ("disk", COLORS[2]), ("bindfs", COLORS[3]), ("sigilfs", COLORS[1])]
    png = os.path.join(RES, "fs-latency-cdf.png")
    g = [TERM % (1500, 1200), "set output %s" % q(png), "set multiplot layout 3,3 title %s" %
         q("fs-bench: latency CDF per operation, 1 thread, benchmark and daemon pinned to CPU 0"),
         "set logscale x", "set xlabel 'latency (µs, log)'", "set ylabel 'fraction of samples'",
         "set yrange [0:1]", "set grid", "set key bottom right"]
    for op, name in ops:
        items = [(b["%s %s" % (fs, op)], fs, c, 1) for fs, c in fss if "%s %s" % (fs, op) in b]
        if not items:
            continue
        g.append("set title %s" % q(name))
        g.append("plot " + cdf_lines(path, items))
    g.append("unset multiplot")
    gnuplot("\n".join(g) + "\n", png)


# ---- scale-bench

def plot_scale():
    path = os.path.join(RES, "scale-samples.dat")
    if os.path.exists(path):
        b = blocks(path)
        sizes = sorted({int(k.split()[0]) for k in b})

        def lab(n):
            return "1M" if n == 1000000 else "%dk" % (n // 1000) if n >= 1000 else str(n)
        for op, name in (("stat", "stat"), ("read", "open+read+close")):
            png = os.path.join(RES, "scale-%s-cdf.png" % op)
            g = [TERM % (1500, 500), "set output %s" % q(png),
                 "set multiplot layout 1,3 title %s" % q("scale-bench: %s of random files, CDF by tree size "
                                                         "(pinned to one CPU; dashed: the same tree on tmpfs)" % name),
                 "set logscale x", "set xlabel 'latency (µs, log)'", "set ylabel 'fraction of samples'",
                 "set yrange [0:1]", "set grid", "set key bottom right"]
            for ph, title in (("cold", "cold: first access, store evicted"),
                              ("warm", "warm: daemon answers, store in page cache"),
                              ("cached", "cached: the same files again")):
                items = []
                for k, n in enumerate(sizes):
                    key = "%d sigilfs %s %s" % (n, ph, op)
                    if key in b:
                        items.append((b[key], "sigilfs %s" % lab(n), COLORS[k % len(COLORS)], 1))
                if ph != "cold":
                    for k, n in enumerate(sizes):
                        key = "%d tmpfs - %s" % (n, op)
                        if key in b:
                            items.append((b[key], "tmpfs %s" % lab(n), COLORS[k % len(COLORS)], 2))
                if items:
                    g.append("set title %s" % q(title))
                    g.append("plot " + cdf_lines(path, items))
            g.append("unset multiplot")
            gnuplot("\n".join(g) + "\n", png)
        items = []
        k = 0
        for d in ("t/d00000", "big10k", "big100k"):
            n = max([s for s in sizes if "%d sigilfs readdir %s" % (s, d) in b] or [0])
            if not n:
                continue
            for fs, dt in (("sigilfs", 1), ("tmpfs", 2)):
                key = "%d %s readdir %s" % (n, fs, d)
                if key in b:
                    items.append((b[key], "%s %s (%s tree)" % (fs, d, lab(n)), COLORS[k], dt))
            k += 1
        if items:
            png = os.path.join(RES, "scale-readdir-cdf.png")
            g = [TERM % (800, 500), "set output %s" % q(png),
                 "set title %s" % q("scale-bench: full listing of a directory (1,000 / 10,000 / 100,000 entries)"),
                 "set logscale x", "set xlabel 'one listing (µs, log)'", "set ylabel 'fraction of listings'",
                 "set yrange [0:1]", "set grid", "set key bottom right", "plot " + cdf_lines(path, items)]
            gnuplot("\n".join(g) + "\n", png)
    cost = os.path.join(RES, "scale-cost.dat")
    if os.path.exists(cost):
        cols = open(cost).readline().lstrip("#").split()
        c = {name: i + 1 for i, name in enumerate(cols)}

        def line(col, title, color, dt=1):
            return "%s using 1:%d with linespoints lw 2 pt 7 lc rgb '%s' dt %d title %s" % (
                q(cost), c[col], color, dt, q(title))
        png = os.path.join(RES, "scale-cost.png")
        g = [TERM % (1300, 950), "set output %s" % q(png),
             "set multiplot layout 2,2 title %s" % q("scale-bench: cost against tree size"),
             "set logscale x", "set xlabel 'files in the tree (log)'", "set grid", "set key top left",
             "set format x '%.0s%c'", "set datafile missing 'NaN'", "set xrange [500:2000000]",
             "set title 'mount: exec until a file answers stat'", "set ylabel 'ms'",
             "plot " + ", ".join([line("mount_cold_ms", "cold (store evicted), p50", COLORS[0]),
                                  line("mount_warm_ms", "warm (store in page cache)", COLORS[2])]),
             "set title 'daemon memory'", "set ylabel 'MiB (log)'", "set logscale y",
             "plot " + ", ".join([line("rss_mount_mib", "VmRSS after mount", COLORS[2]),
                                  line("rss_cold_hwm_mib", "VmHWM after cold random stats+reads", COLORS[3]),
                                  line("rss_walk_hwm_mib", "VmHWM after whole-tree walk", COLORS[1]),
                                  line("rssanon_walk_mib", "RssAnon (heap) after walk", COLORS[4], 2),
                                  "64 with lines lc rgb 'black' dt 3 title 'target 64 MiB'"]),
             "set title 'stat of random files'", "set ylabel 'µs (log)'",
             "plot " + ", ".join([line("stat_cold_p99_us", "cold p99", COLORS[1]),
                                  line("stat_cold_p50_us", "cold p50", COLORS[1], 2),
                                  line("stat_warm_p99_us", "warm p99", COLORS[0]),
                                  line("stat_warm_p50_us", "warm p50", COLORS[0], 2),
                                  line("stat_cached_p99_us", "cached p99", COLORS[2]),
                                  line("tmpfs_stat_p99_us", "tmpfs p99", COLORS[7], 3)]),
             "set title 'space and whole-tree walk'", "set ylabel 'bytes per file / µs per entry (log)'",
             "set key center right",
             "plot " + ", ".join([line("store_bytes_per_file", "store on disk, bytes per file", COLORS[0]),
                                  line("tmpfs_bytes_per_file", "tmpfs, bytes per file", COLORS[7], 3),
                                  line("walk_us_per_entry", "walk (list + lstat), µs per entry", COLORS[1])]),
             "unset multiplot"]
        gnuplot("\n".join(g) + "\n", png)


# ---- repl-bench

def plot_repl(tmp):
    path = os.path.join(RES, "repl-samples.json")
    if not os.path.exists(path):
        return
    out = json.load(open(path))
    lat = out.get("latency", {})
    base = out.get("config", {}).get("baseline", "etcd")
    dat = os.path.join(tmp, "prop.dat")
    idx, items = 0, {}
    with open(dat, "w") as f:
        for kind in ("update", "create", "delete"):
            for sysn in ("sigilfs", "baseline"):
                v = lat.get(sysn, {}).get(kind, {}).get("prop") or []
                if not v:
                    continue
                f.write("# %s %s\n" % (sysn, kind))
                f.write("".join("%.4f\n" % (x * 1e3) for x in v))
                f.write("\n\n")
                items.setdefault(kind, []).append((idx, sysn if sysn == "sigilfs" else base,
                                                   COLORS[1] if sysn == "sigilfs" else COLORS[0], 1))
                idx += 1
    if items:
        png = os.path.join(RES, "repl-propagation-cdf.png")
        g = [TERM % (1500, 500), "set output %s" % q(png),
             "set multiplot layout 1,3 title %s" % q("repl-bench: propagation A -> C (3 nodes on loopback), CDF; "
                                                     "baseline: %s put on m1 -> watch event on m3" % base),
             "set logscale x", "set xlabel 'ms (log)'", "set ylabel 'fraction of samples'", "set yrange [0:1]",
             "set grid", "set key bottom right"]
        for kind, title in (("update", "update of one file"), ("create", "create of a new file"),
                            ("delete", "delete (sigilfs holds a delete 150 ms)")):
            if kind in items:
                g.append("set title %s" % q(title))
                g.append("plot " + cdf_lines(dat, items[kind]))
        g.append("unset multiplot")
        gnuplot("\n".join(g) + "\n", png)
    # the round of each writer count that the report shows (tput_pick)
    tp = [r for r in out.get("throughput") or [] if r.get("shown", True)]
    if tp:
        dat = os.path.join(tmp, "tput.dat")
        series, lats, idx = [], [], 0
        with open(dat, "w") as f:
            for r in tp:
                if not r.get("series"):
                    continue
                f.write("# %s %d\n" % (r["system"], r["writers"]))
                f.write("".join("%.4f %d\n" % (t, n) for t, n in r["series"]))
                f.write("\n\n")
                series.append((idx, r))
                idx += 1
            for r in tp:
                if not r.get("lat"):
                    continue
                f.write("# lat %s %d\n" % (r["system"], r["writers"]))
                f.write("".join("%.4f\n" % (x * 1e3) for x in r["lat"]))
                f.write("\n\n")
                lats.append((idx, r))
                idx += 1
        ws = sorted({r["writers"] for _, r in series})
        png = os.path.join(RES, "repl-throughput.png")
        g = [TERM % (1300, 500), "set output %s" % q(png),
             "set multiplot layout 1,2 title %s" % q("repl-bench: replicated writes, 3 nodes on loopback"),
             "set grid", "set key top left",
             "set title 'writes applied on C (etcd: member 3) since the start'",
             "set xlabel 'seconds'", "set ylabel 'writes'"]
        cl = []
        for idx_, r in series:
            color = COLORS[1] if r["system"] == "sigilfs" else COLORS[0]
            dt = 1 if r["writers"] == ws[-1] else 2
            cl.append("%s index %d using 1:2 with lines lw 2 lc rgb '%s' dt %d title %s"
                      % (q(dat), idx_, color, dt, q("%s, %d writer%s" % (r["system"], r["writers"],
                                                                          "" if r["writers"] == 1 else "s"))))
        g.append("plot " + ", ".join(cl))
        g += ["set title 'one write as its writer saw it, CDF'", "set logscale x", "set xlabel 'ms (log)'",
              "set ylabel 'fraction of writes'", "set yrange [0:1]", "set key bottom right"]
        g.append("plot " + cdf_lines(dat, [(i, "%s, %d writer%s" % (r["system"], r["writers"],
                                                                     "" if r["writers"] == 1 else "s"),
                                            COLORS[1] if r["system"] == "sigilfs" else COLORS[0],
                                            1 if r["writers"] == ws[-1] else 2) for i, r in lats]))
        g.append("unset multiplot")
        gnuplot("\n".join(g) + "\n", png)


# ---- mirror-bench: commit time by tree size (CDF), lag under load over time

def plot_mirror(tmp):
    sizes = sorted(int(f[len("mirror-commit-sigilfs-"):-4]) for f in os.listdir(RES)
                   if f.startswith("mirror-commit-sigilfs-") and f.endswith(".dat"))
    lag = os.path.join(RES, "mirror-lag.dat")
    if not sizes and not os.path.exists(lag):
        return
    png = os.path.join(RES, "mirror.png")
    g = [TERM % (1300, 500), "set output %s" % q(png),
         "set multiplot layout 1,2 title %s" % q("mirror-bench: the Git mirror (pinned to one CPU)"), "set grid"]
    items = []
    for k, n in enumerate(sizes):
        for who, dt in (("sigilfs", 1), ("git", 2)):
            f = os.path.join(RES, "mirror-commit-%s-%d.dat" % (who, n))
            if os.path.exists(f) and os.path.getsize(f):
                items.append("%s using 1:(1) smooth cnormal with lines lw 2 lc rgb '%s' dt %d title %s"
                             % (q(f), COLORS[k % len(COLORS)], dt,
                                q("%s, %s files" % ("sigilfs mirror" if who == "sigilfs" else "git commit -a",
                                                    "{:,}".format(n)))))
    if items:
        g += ["set title 'one changed file, one commit: CDF (dashed: the git CLI)'", "set logscale x",
              "set xlabel 'ms (log)'", "set ylabel 'fraction of commits'", "set yrange [0:1]",
              "set key bottom right", "set arrow 1 from 10, graph 0 to 10, graph 1 nohead dt 3 lc rgb 'black'",
              "set label 1 'target at 100k files: 10 ms' at 10.5, graph 0.5 left",
              "plot " + ", ".join(items), "unset arrow 1", "unset label 1", "unset logscale x"]
    if os.path.exists(lag) and os.path.getsize(lag):
        dat = os.path.join(tmp, "lag.dat")
        vals = open(lag).read().split()
        with open(dat, "w") as f:
            for i, v in enumerate(vals):
                f.write("%.2f %s\n" % (i * 0.02, v))
        top = max([2500.0] + [float(v) * 1.1 for v in vals])
        g += ["set title 'mirror lag under 1,000 writes/s (sampled every 20 ms)'", "set xlabel 'seconds'",
              "set ylabel 'ms the oldest unmirrored change has waited'", "set yrange [0:%.0f]" % top,
              "set key top right",
              "plot %s using 1:2 with lines lw 2 lc rgb '%s' title 'lag', 2000 with lines dt 3 lc rgb 'black' "
              "title 'target 2 s'" % (q(dat), COLORS[1])]
    g.append("unset multiplot")
    gnuplot("\n".join(g) + "\n", png)


def main():
    if not shutil.which("gnuplot"):
        sys.stderr.write("plot.py: gnuplot is missing (apt-get install gnuplot-nox)\n")
        return 1
    tmp = tempfile.mkdtemp(prefix="sigil-plot.")
    try:
        plot_fs()
        plot_scale()
        plot_repl(tmp)
        plot_mirror(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for p in wrote:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
