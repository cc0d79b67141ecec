#!/usr/bin/env python3
# scale-report.py: the report of bench/scale-bench.sh: reads the "key value"
# lines the script gathered (R_RES) and writes the Markdown report (R_OUT) and
# the cost-against-tree-size table for the plots (R_COST). Every input comes
# from the environment the script sets (R_*). Python standard library only.

import math
import os

E = os.environ
MIB = 1024 * 1024


def load(path):
    res = {}
    for line in open(path):
        parts = line.split(None, 1)
        if not parts:
            continue
        res.setdefault(parts[0], []).append(parts[1].strip() if len(parts) > 1 else "")
    return res


R = load(E["R_RES"])
SIZES = [int(s) for s in E["R_SIZES"].split()]


def one(key, i=-1):
    v = R.get(key)
    return v[i] if v else None


def num(key, i=-1):
    v = one(key, i)
    try:
        return float(v.split()[0]) if v is not None else None
    except ValueError:
        return None


def nums(key):
    return [float(x.split()[0]) for x in R.get(key, [])]


def pct(vals, p):
    v = sorted(vals)
    if not v:
        return None
    k = max(0, math.ceil(p / 100.0 * len(v)) - 1)
    return v[k]


_raw = {}


def raw(path):
    """Samples (ns) of one raw file, sorted; [] if it does not exist."""
    if path not in _raw:
        try:
            _raw[path] = sorted(int(x) for x in open(path) if x.strip())
        except FileNotFoundError:
            _raw[path] = []
    return _raw[path]


def summ(v):
    return (len(v), pct(v, 50), pct(v, 99), v[-1]) if v else None


def ops(n, phase, op):
    """(n, p50_ns, p99_ns, max_ns) over every sample of that series, or None."""
    return summ(raw(os.path.join(E["R_RAW"], str(n), "%s-%s.txt" % (phase, op))))


def rd_raw(n, fs, d):
    return raw(os.path.join(E["R_RAW"], str(n), "%sreaddir-%s.txt" % ("tmpfs-" if fs == "tmpfs" else "",
                                                                       d.replace("/", "_"))))


def rd(n, fs, d):
    """(entries, first_ns, n, p50_ns, p99_ns) or None."""
    v = one("%d.%s.readdir.%s" % (n, fs, d))
    s = summ(rd_raw(n, fs, d))
    if not v or not s:
        return None
    a = v.split()
    return int(a[0]), float(a[1]), s[0], s[1], s[2]


def faults(n, phase):
    """(minor, major) page faults of the daemon per operation in that phase, or None."""
    v = R.get("%d.faults.%s" % (n, phase))
    if not v:
        return None
    mi = sum(int(x.split()[0]) for x in v)
    ma = sum(int(x.split()[1]) for x in v)
    k = sum(int(x.split()[2]) for x in v)
    return mi / k, ma / k


def walk(n, fs):
    v = one("%d.%s.walk" % (n, fs))
    if not v:
        return None
    a = v.split()
    return int(a[0]), float(a[1])


def t(ns):
    if ns is None:
        return "n/a"
    if ns < 1e6:
        return "%.1f µs" % (ns / 1e3)
    if ns < 1e9:
        return "%.2f ms" % (ns / 1e6) if ns < 1e8 else "%.0f ms" % (ns / 1e6)
    return "%.2f s" % (ns / 1e9)


def mib(kib):
    return "n/a" if kib is None else "%.1f MiB" % (kib / 1024.0)


def b(x):
    if x is None:
        return "n/a"
    if x >= 1 << 30:
        return "%.2f GiB" % (x / (1 << 30))
    if x >= 1 << 20:
        return "%.1f MiB" % (x / (1 << 20))
    if x >= 1 << 10:
        return "%.1f KiB" % (x / 1024.0)
    return "%d B" % x


def r(x):
    if x is None:
        return "n/a"
    return "%.0f" % x if x >= 100 else "%.1f" % x if x >= 10 else "%.2f" % x


def ratio(a, c):
    return None if a is None or c is None or c == 0 else a / c


def label(n):
    return "1M" if n == 1000000 else "%dk" % (n // 1000) if n % 1000 == 0 and n >= 1000 else str(n)


big = max(SIZES)
small = min(SIZES)
BIG, SMALL = label(big), label(small)
L = []
L.append("# sigilfs scale benchmark\n")
L.append("Produced by `bench/scale-bench.sh` (see `bench/README.md`). Trees of %s files were filled directly "
         "through the store API (`bench/mkstore.c`) and mounted one after the other; the same trees were built "
         "on tmpfs as a baseline. Every figure comes from this one run on this machine. The benchmark and the "
         "daemon (all its threads) ran pinned to CPU %s with `taskset`. Ratios are sigilfs / baseline: for "
         "times and sizes, above 1 sigilfs costs more.\n"
         % (", ".join(label(n) for n in SIZES), E["R_CPU"]))

# ---- targets
rows = []


def target_row(fig, sv, bv, fmt, tgt, ok, miss):
    rows.append("| %s | %s | %s | %s | %s | %s |" % (
        fig, fmt(sv), fmt(bv) if bv is not None else "-", r(ratio(sv, bv)) if bv is not None else "-",
        tgt, ("yes" if ok else "**no** (%s)" % miss) if ok is not None else "n/a"))


def over(x, lim):
    return "%.1fx over" % (x / lim)


if len(SIZES) >= 1:
    mc = nums("%d.mount_cold" % big)
    mc0 = nums("%d.mount_cold" % small)
    m50, m0 = pct(mc, 50), pct(mc0, 50)
    target_row("%s files: mount time, exec of sigilfs until a file in the tree answers stat; store evicted "
               "from the page cache (p50 of %d; max %s)" % (BIG, len(mc), t(max(mc) if mc else None)),
               m50, m0, t, "< 1 s", None if m50 is None else m50 < 1e9,
               None if m50 is None else over(m50, 1e9))
    lim = 64 * 1024
    mb = int(num("%d.m" % big) or 0)
    for key, what in [("rss_mount", "just after mount"),
                      ("rss_cold_stat", "after %d random stats, cold (a mount with the store evicted)" % mb),
                      ("rss_cold_read", "after %d random open+read+close, cold (a mount with the store evicted)" % mb),
                      ("rss_ops", "after %d random stats and %d reads warm, then the same again cached (a mount with "
                       "the store in the page cache)" % (mb, mb)),
                      ("rss_walk", "after walking the whole tree (lstat of every entry)")]:
        kk = "VmRSS" if key == "rss_mount" else "VmHWM"
        sv, bv = num("%d.%s.%s" % (big, key, kk)), num("%d.%s.%s" % (small, key, kk))
        if sv is None:
            continue
        anon = num("%d.%s.RssAnon" % (big, key))
        filer = num("%d.%s.RssFile" % (big, key))
        target_row("%s files: daemon %s %s (of which RssAnon %s, RssFile %s)"
                   % (BIG, kk, what, mib(anon), mib(filer)), sv, bv, mib, "< 64 MiB",
                   sv < lim, over(sv, lim))
    for phase, what in [("warm", "warm: files not yet looked up in this mount (the daemon answers), store in the page cache"),
                        ("cold", "cold: first access after a mount with the store evicted"),
                        ("cached", "cached: the same files again (the kernel answers)")]:
        s, s0 = ops(big, phase, "stat"), ops(small, phase, "stat")
        if not s or not s0:
            continue
        target_row("%s files: stat p99, %s (n=%d; %s tree: n=%d)" % (BIG, what, s[0], SMALL, s0[0]),
                   s[2], s0[2], t, "<= 2 x the %s tree" % SMALL, s[2] <= 2 * s0[2],
                   "%.1fx the %s tree, %.1fx over" % (s[2] / s0[2], SMALL, s[2] / s0[2] / 2))
    for phase in ("warm", "cold", "cached"):
        s, s0 = ops(big, phase, "read"), ops(small, phase, "read")
        if not s or not s0:
            continue
        rows.append("| %s files: open+read+close p99, %s (n=%d) | %s | %s | %s | - (no target) | - |"
                    % (BIG, phase, s[0], t(s[2]), t(s0[2]), r(ratio(s[2], s0[2]))))

L.append("## Targets\n")
L.append("Baseline: the %s-file tree, measured in the same run.\n" % SMALL)
L.append("| figure | sigilfs (%s files) | baseline (%s files) | ratio | target | met? |" % (BIG, SMALL))
L.append("|---|---|---|---|---|---|")
L += rows
L.append("")

# ---- cost against tree size
cols = SIZES
L.append("## Cost against tree size\n")
L.append("| figure | " + " | ".join("%s files" % label(n) for n in cols) + " | %s / %s |" % (BIG, SMALL))
L.append("|---|" + "---|" * len(cols) + "---|")


def row(name, vals, fmt, show_ratio=True):
    rv = ratio(vals[-1], vals[0]) if show_ratio and len(vals) > 1 else None
    L.append("| %s | %s | %s |" % (name, " | ".join(fmt(v) if v is not None else "n/a" for v in vals),
                                    r(rv) if rv is not None else "-"))


row("fill the store (mkstore, apply, 2 submitters)", [num("%d.fill_seconds" % n) for n in cols],
    lambda v: "%.2f s" % v)
row("fill rate", [ratio(n, num("%d.fill_seconds" % n)) for n in cols], lambda v: "%.0f files/s" % v, False)
row("store file (data.mdb), apparent size", [num("%d.store_apparent" % n) for n in cols], b)
row("store data dir on disk (du)", [num("%d.store_du" % n) for n in cols], b)
row("LMDB pages in use", [num("%d.used_bytes" % n) for n in cols], b)
row("store bytes on disk per file", [ratio(num("%d.store_du" % n), n) for n in cols], lambda v: "%.0f B" % v)
if E["R_TMPFS"] == "1":
    row("tmpfs: bytes used per file (same tree)", [ratio(num("%d.tmpfs.used" % n), n) for n in cols],
        lambda v: "%.0f B" % v)
row("content bytes per file", [float(E["R_FSIZE"]) for n in cols], lambda v: "%.0f B" % v, False)
row("mount, cold (store evicted), p50 of %d" % len(nums("%d.mount_cold" % big)),
    [pct(nums("%d.mount_cold" % n), 50) for n in cols], t)
row("mount, cold, max", [max(nums("%d.mount_cold" % n) or [0]) or None for n in cols], t)
row("mount, warm (store in the page cache), p50 of %d" % len(nums("%d.mount_warm" % big)),
    [pct(nums("%d.mount_warm" % n), 50) for n in cols], t)
row("sigilfs command returns (daemonized), cold, p50", [pct(nums("%d.mount_cold.exit" % n), 50) for n in cols], t)
row("unmount of an idle mount, p50", [pct(nums("%d.umount" % n), 50) for n in cols], t)
row("unmount after the walk (kernel forgets every inode)", [num("%d.umount_last" % n) for n in cols], t)
for key, what in [("rss_mount", "just after a cold mount"), ("rss_cold_stat", "after the cold stats"),
                  ("rss_cold_read", "after the cold reads (another mount)"),
                  ("rss_mount_warm", "just after the warm mount"), ("rss_ops", "after the warm and cached stats and reads"),
                  ("rss_readdir", "after the readdirs"), ("rss_walk", "after the whole-tree walk")]:
    if num("%d.%s.VmRSS" % (cols[0], key)) is None:
        continue
    row("daemon VmRSS, %s" % what, [num("%d.%s.VmRSS" % (n, key)) for n in cols], mib)
    row("&nbsp;&nbsp;RssAnon (heap: inode table, buffers)", [num("%d.%s.RssAnon" % (n, key)) for n in cols], mib)
    row("&nbsp;&nbsp;RssFile (mapped store pages)", [num("%d.%s.RssFile" % (n, key)) for n in cols], mib)
    if key in ("rss_cold_stat", "rss_cold_read", "rss_ops", "rss_walk"):
        row("&nbsp;&nbsp;VmHWM (peak)", [num("%d.%s.VmHWM" % (n, key)) for n in cols], mib)
for phase, what in [("cold", "cold"), ("warm", "warm"), ("cached", "cached")]:
    for op, on in [("stat", "stat"), ("read", "open+read+close")]:
        vals = [ops(n, phase, op) for n in cols]
        row("%s, %s, p50" % (on, what), [v[1] if v else None for v in vals], t)
        row("%s, %s, p99" % (on, what), [v[2] if v else None for v in vals], t)
for phase, what in (("cold-stat", "cold stats"), ("cold-read", "cold reads"), ("warm", "warm stats and reads"),
                    ("cached", "cached stats and reads")):
    fv = [faults(n, phase) for n in cols]
    row("daemon page faults per operation, %s: minor / major" % what,
        [("%.2f / %.3f" % f) if f else None for f in fv], lambda v: v, False)
vals = [rd(n, "sigilfs", "t/d00000") for n in cols]
row("readdir of a 1,000-entry directory, p50", [v[3] if v else None for v in vals], t)
row("readdir of a 1,000-entry directory, p99", [v[4] if v else None for v in vals], t)
if E["R_WALK"] == "1":
    w = [walk(n, "sigilfs") for n in cols]
    row("walk the whole tree (list + lstat every entry)", [v[1] * 1e9 if v else None for v in w], t)
    row("walk rate", [v[0] / v[1] if v and v[1] else None for v in w], lambda v: "%.0f entries/s" % v, False)
    a0 = [num("%d.rss_readdir.RssAnon" % n) for n in cols]
    a1 = [num("%d.rss_walk.RssAnon" % n) for n in cols]
    row("daemon heap grown by the walk, per entry",
        [(y - x) * 1024 / v[0] if x is not None and y is not None and v else None for x, y, v in zip(a0, a1, w)],
        lambda v: "%.0f B" % v, False)
L.append("")
L.append("cold: the first access to each file after a mount made with the store file evicted from the page cache "
         "(`posix_fadvise(DONTNEED)` on `data.mdb`, checked with `mincore`): each stat is a FUSE LOOKUP of names "
         "the kernel has not seen, answered from the disk. warm: the same files after a fresh mount with the "
         "store file read into the page cache: the kernel still asks the daemon, the daemon finds every page "
         "in memory. cached: the same files again right away in the same mount, within `cache_timeout` (10 s): "
         "stat is answered by the kernel; open+read+close still sends OPEN, FLUSH and RELEASE to the daemon "
         "(the content itself comes from the kernel's page cache). m = %s random files (or half the tree if "
         "that is less): each of %s cold mounts per tree is followed by m stats, each of %s more by m reads of "
         "other files (so that neither finds the store warmed by the other), every mount with new files; each "
         "of %s warm mounts per tree (enough for the smallest tree to give %s samples) by m stats and m reads, "
         "then the same again cached (tmpfs gets the same files as the warm mounts). The sizes take turns: "
         "every round mounts each tree once, smallest first, so that the noise of the shared machine falls on "
         "all of them. n in the tables counts every sample of the series.\n"
         % (E["R_M"], E["R_MOUNTS"], E["R_MOUNTS"], one("%d.rounds" % small) or "?", E["R_M"]))

# ---- against tmpfs
if E["R_TMPFS"] == "1":
    L.append("## Against tmpfs (the same tree, same run, same CPU)\n")
    L.append("| figure | files | sigilfs | tmpfs | ratio |")
    L.append("|---|---|---|---|---|")
    for n in cols:
        for phase in ("warm", "cached"):
            for op, on in [("stat", "stat"), ("read", "open+read+close")]:
                s, tm = ops(n, phase, op), ops(n, "tmpfs", op)
                if not s or not tm:
                    continue
                for k, p in ((1, "p50"), (2, "p99")):
                    L.append("| %s, sigilfs %s, %s | %s | %s | %s | %s |" % (on, phase, p, label(n), t(s[k]), t(tm[k]),
                                                                          r(ratio(s[k], tm[k]))))
        for d in ("t/d00000", "big10k", "big100k"):
            s, tm = rd(n, "sigilfs", d), rd(n, "tmpfs", d)
            if not s or not tm:
                continue
            L.append("| readdir of %s (%d entries), first listing | %s | %s | %s | %s |" % (
                d, s[0], label(n), t(s[1]), t(tm[1]), r(ratio(s[1], tm[1]))))
            L.append("| readdir of %s (%d entries), p50 of %d | %s | %s | %s | %s |" % (
                d, s[0], s[2], label(n), t(s[3]), t(tm[3]), r(ratio(s[3], tm[3]))))
            L.append("| readdir of %s (%d entries), p99 of %d | %s | %s | %s | %s |" % (
                d, s[0], s[2], label(n), t(s[4]), t(tm[4]), r(ratio(s[4], tm[4]))))
        if E["R_WALK"] == "1":
            s, tm = walk(n, "sigilfs"), walk(n, "tmpfs")
            if s and tm:
                L.append("| walk the whole tree (%d entries) | %s | %s | %s | %s |" % (
                    s[0], label(n), t(s[1] * 1e9), t(tm[1] * 1e9), r(ratio(s[1], tm[1]))))
        su, tu = num("%d.store_du" % n), num("%d.tmpfs.used" % n)
        L.append("| space used | %s | %s | %s | %s |" % (label(n), b(su), b(tu), r(ratio(su, tu))))
    L.append("")
    L.append("tmpfs keeps every file in the page cache and every name in the dentry cache, so its figures are the "
             "kernel's own cost with nothing below it (no cold case exists for it); a file of %s bytes still takes "
             "a 4 KiB page there.\n" % E["R_FSIZE"])

# ---- ways to fill a store
cmp = [(k, v) for k, v in R.items() if k.startswith("cmp.") and k.endswith(".seconds")]
if cmp:
    L.append("## Filling a store: which way is fastest\n")
    L.append("`bench/mkstore.c` fills a data dir through `src/lmdb/store.h`, no FUSE, %s files of %s bytes:\n"
             % ("{:,}".format(int(E["R_CMP_N"])), E["R_FSIZE"]))
    L.append("| method | threads | batch_max | seconds | files/s | commits |")
    L.append("|---|---|---|---|---|---|")
    for k, v in cmp:
        _, m, th, bm, _ = k.split(".")
        secs = float(v[-1])
        what = ("`sg_store_apply_many()` with explicit stamps, 5,000 changes per call" if m == "apply"
                else "`sg_store_create()` with local stamps, one commit wait per file")
        L.append("| %s | %s | %s | %.2f | %.0f | %s |" % (what, th, bm if bm != "0" else "1000 (default)", secs,
                                                          int(E["R_CMP_N"]) / secs, one(k[:-len("seconds")] + "commits")))
    L.append("")
    L.append("The trees above were filled the first way with 2 submitters: the store's writer commits up to "
             "batch_max ops per transaction, each in its own nested transaction, with one fdatasync per commit; "
             "2 submitters keep the next batch queued while one commits. Local creates from many threads wait "
             "for their commit one by one, so a commit holds only as many ops as there are threads waiting.\n")

# ---- findings
F = []
mc = pct(nums("%d.mount_cold" % big), 50)
if mc is not None:
    F.append("Mount time does not grow with the tree: opening the store reads a few meta rows and starts the "
             "writer; nothing is scanned before the mount answers (a thread maps the B-trees' branch pages after "
             "the open, in the background) (%s for %s files, %s for %s)." % (t(mc), BIG, t(pct(nums("%d.mount_cold" % small), 50)), SMALL))
rf = num("%d.rss_ops.RssFile" % big)
ra = num("%d.rss_ops.RssAnon" % big)
fw = faults(big, "warm")
if rf is not None and (num("%d.rss_ops.VmHWM" % big) or 0) >= 64 * 1024:
    F.append("VmRSS counts the pages of the memory-mapped store that the daemon has touched: RssFile %s after the "
             "%d random stats and %d reads of a warm mount, beside a heap (RssAnon) of %s. The store is an LMDB map, "
             "so every page a lookup reads becomes part of the daemon's RSS, and on each page fault the kernel maps "
             "the neighbouring pages that are in the page cache too (fault-around, 64 KiB by default): %.2f minor "
             "faults per operation x %d operations x 64 KiB = %s, about what RssFile shows. These pages are clean "
             "page cache, shared and reclaimable, not the daemon's own memory; still, the target as worded (RSS) is "
             "missed. RssAnon, the daemon's own memory, stays under 64 MiB here; it is the walk that breaks it.%s"
             % (mib(rf), int(num("%d.m" % big) or 0), int(num("%d.m" % big) or 0), mib(ra),
                fw[0] if fw else float("nan"), 2 * int(num("%d.m" % big) or 0),
                mib((fw[0] if fw else 0) * 2 * (num("%d.m" % big) or 0) * 64),
                " This run set `%s`." % E["R_OPTS"] if E.get("R_OPTS") else ""))
elif rf is not None:
    ms = one("%d.map_status" % big)
    F.append("The store is an LMDB map: every page a lookup reads is mapped into the daemon and counts in its RSS, "
             "and by default each page fault maps the neighbouring pages that are in the page cache too "
             "(fault-around, 64 KiB). Unbounded, that would be most of the %s store after a few thousand random "
             "lookups. Under `max_mapped` (default 16M) the daemon turns fault-around off on its map where the "
             "kernel can (Linux 6.7: a range registered with an asynchronous userfaultfd), so that a fault maps "
             "only its page; maps the branch pages of its B-trees in a thread after the open; and once the "
             "store's share of its RssFile passes the bound, drops its mappings of the store's pages but the "
             "branch pages (the pages stay in the page cache). The daemon's status said, after the warm phase: "
             "\"%s\". %.2f minor faults per operation in the warm phase; RssFile %s after the %d random stats "
             "and %d reads of a warm mount, beside a heap (RssAnon) of %s. "
             "[`scale-max-mapped.md`](scale-max-mapped.md) measured the bound against an unbounded map before "
             "fault-around was turned off and the branch pages kept."
             % (b(num("%d.store_apparent" % big)), ms or "?", fw[0] if fw else float("nan"), mib(rf),
                int(num("%d.m" % big) or 0), int(num("%d.m" % big) or 0), mib(ra)))
aw = num("%d.rss_walk.RssAnon" % big)
if aw is not None and aw >= 64 * 1024:
    w = walk(big, "sigilfs")
    a0 = num("%d.rss_readdir.RssAnon" % big) or 0
    F.append("After a whole-tree walk the heap (RssAnon) is %s: the daemon keeps one inode object per entry the "
             "kernel holds a reference to (about %.0f bytes per entry here), and the kernel holds all %d entries "
             "it has looked up until memory pressure or an unmount makes it forget them. Anything that visits "
             "the whole tree (find, rsync, backup, git add) brings the daemon there. Keeping the per-inode "
             "state smaller (content buffers and locks only while a file is open) or giving the kernel shorter "
             "entry lifetimes would bound it."
             % (mib(aw), (aw - a0) * 1024 / w[0] if w else 0, w[0] if w else 0))
sc, sc0 = ops(big, "cold", "stat"), ops(small, "cold", "stat")
fc, fc0 = faults(big, "cold-stat"), faults(small, "cold-stat")
if sc and sc0 and sc[2] > 2 * sc0[2] and fc:
    nmaj = fc[1] * sc[0]
    if nmaj >= 10:
        F.append("Cold stat p99 (%s against %s; p50 %s against %s) is the disk: a lookup in a store that is not in "
                 "the page cache waits for the B-tree pages it needs. The daemon took about %.0f major page faults "
                 "in the %d cold stats of the %s tree (%.3f per stat; %.3f in the %s tree, whose whole store is read "
                 "by its first few lookups). Each major fault reads ahead around the faulting page (read_ahead_kb "
                 "of the disk: %s), so the lookups that wait pay for a large read, and the others find their pages "
                 "already in. This is the price of a store that is not in memory yet, as after a reboot. (The store "
                 "is opened with MDB_NORDAHEAD: LMDB advises the kernel that its map is read at random.)"
                 % (t(sc[2]), t(sc0[2]), t(sc[1]), t(sc0[1]), nmaj, sc[0], BIG, fc[1], fc0[1] if fc0 else 0,
                    SMALL, E.get("R_READAHEAD", "?")))
    else:
        F.append("Cold stat p99 (%s against %s; p50 %s against %s) misses 2x, but the daemon took only about %.0f "
                 "major page faults in the %d cold stats of the %s tree (%.2f minor faults per stat): the whole "
                 "store came in with the first few reads (read_ahead_kb %s), so the tail here is not the disk; "
                 "with so few samples in the tail, noise from the shared machine weighs in."
                 % (t(sc[2]), t(sc0[2]), t(sc[1]), t(sc0[1]), nmaj, sc[0], BIG, fc[0], E.get("R_READAHEAD", "?")))
sw, sw0 = ops(big, "warm", "stat"), ops(small, "warm", "stat")
fw, fw0 = faults(big, "warm"), faults(small, "warm")
if sw and sw0 and sw[2] > 2 * sw0[2]:
    F.append("Warm stat costs more in the big tree at the median too (p50 %s against %s, p99 %s against %s), so it "
             "is not a few outliers: every lookup does more work. The store is in the page cache, but a fresh "
             "daemon maps each store page on its first touch: %.1f minor page faults per operation in the warm "
             "phase of the %s tree against %.1f in the %s tree, whose upper B-tree levels are few and soon all "
             "mapped. The B-trees of %s entries are also deeper, and the pages a lookup touches are spread over a "
             "%s map, so fewer of them are in the CPU caches and TLB.%s"
             % (t(sw[1]), t(sw0[1]), t(sw[2]), t(sw0[2]), fw[0] if fw else float("nan"), BIG,
                fw0[0] if fw0 else float("nan"), SMALL, BIG, b(num("%d.store_apparent" % big)),
                " The bound on mapped pages (`max_mapped`, above) adds to both: the pages it drops are mapped "
                "again when next touched, and the drops themselves run on the reading threads "
                "([`scale-max-mapped.md`](scale-max-mapped.md) compares an unbounded map)."
                if "max_mapped" not in E.get("R_OPTS", "") else ""))
fcost = one("faultcost")
if fcost and fw and fw0:
    fv = [float(x) for x in fcost.split()]
    F.append("What a minor fault costs on this machine, measured in the same run (`scale-bench faultcost`: the %s "
             "store file, in the page cache, mapped shared and read-only as LMDB maps it, 2000 random pages "
             "touched, pinned): %s per first touch, %s per touch once mapped, %s per touch again after "
             "MADV_DONTNEED of the whole map (which took %s); each fault mapped %.1f pages (fault-around). At "
             "that price the %.1f extra minor faults per warm operation of the %s tree come to about %s, against "
             "a p50 difference of %s: on this machine the faults, not the B-tree search, make most of a warm "
             "lookup's extra cost, and they are what a bound on the mapped pages multiplies."
             % (BIG, t(fv[0]), t(fv[2]), t(fv[1]), t(fv[4]), fv[3], fw[0] - fw0[0], BIG,
                t((fw[0] - fw0[0]) * fv[0]), t(sw[1] - sw0[1]) if sw and sw0 else "n/a"))
if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(E["R_OUT"])), "scale-nordahead.md")):
    F.append("An earlier experiment measured what LMDB's read-ahead off (MDB_NORDAHEAD, in the tree since "
             "then) changes for the cold and the warm cases: [`scale-nordahead.md`](scale-nordahead.md).")
if F:
    L.append("## Findings\n")
    for f in F:
        L.append("- " + f)
    L.append("")

# ---- how
L.append("## How it was measured\n")
L.append("- Tree of N files (`bench/scale-tree.h`): `t/dDDDDD/` directories of 1,000 files each, plus `big10k/` "
         "(10,000 files) from 100k files up and `big100k/` (100,000 files) at 1M, counted in N; every file "
         "%s bytes of text that name it (every read checks the content). The store is filled by `mkstore` "
         "(above), then mounted %s (no replication, the mirror off)." % (E["R_FSIZE"],
         "with default options (cache_timeout 10 s, max_mapped 16M)" if not E.get("R_OPTS")
         else "with `-o %s`, the other options at their defaults" % E["R_OPTS"]))
L.append("- Mount time: `scale-bench mount` forks and execs `taskset -c %s sigilfs MNT -o data=DIR` (the daemonizing "
         "form, as `mount` runs it) and stats a file at the deepest level of the tree every 100 µs until it "
         "answers. 2 x %s cold mounts per tree, the store evicted before each, and the warm ones." % (E["R_CPU"], E["R_MOUNTS"]))
L.append("- RSS: VmRSS, VmHWM, RssAnon and RssFile from `/proc/PID/status` of the daemon at each point named.")
L.append("- Readdir: opendir, readdir to the end, closedir; the first listing after the warm mount is shown apart, "
         "p50/p99 over the rest (20 for 1,000 entries, 10 for 10,000, 4 for 100,000). Walk: every directory "
         "listed and every entry lstat'ed (`fstatat`), single-threaded.")
L.append("- Store size: `data.mdb`'s apparent size (the LMDB map grown so far), the data dir's `du`, and the "
         "LMDB pages in use; tmpfs: `df` used for the same tree.")
L.append("- Every sample (µs, in the order taken, one gnuplot block per series): `%s`; "
         "the figures against tree size: `%s`. Plots: `scale-*.png` next to this report (`bench/plot.py`)."
         % (E["R_SAMPLES_REL"], E["R_COST_REL"]))
L.append("- One run: the stores are filled first; the cold mounts, then the warm ones, go round the tree sizes in "
         "turn; readdir and the walk come with each tree's last warm mount; the tmpfs trees are built and measured "
         "last, one after the other.\n")
L.append("## Machine\n")
for k, v in [("date", "R_DATE"), ("nproc", "R_NPROC"), ("model", "R_MODEL"), ("kernel", "R_KERNEL"), ("mem", "R_MEM"),
             ("load start", "R_LOAD_START"), ("load end", "R_LOAD_END"), ("disk", "R_DISKFS"),
             ("disk read_ahead_kb", "R_READAHEAD"), ("work dir", "R_WORK"),
             ("compiler", "R_GCC"), ("sigilfs rev", "R_REV"), ("sigilfs sha256", "R_SHA"),
             ("libsigil.a sha256 (mkstore)", "R_LIBSHA"), ("wall", "R_WALL")]:
    L.append("- %s: %s" % (k, E[v]))
L.append("- others: %s sigilfs daemons not started by this run were running when it began" % E["R_OTHERS"])
L.append("- command: `%s`" % E["R_CMD"])
open(E["R_OUT"], "w").write("\n".join(L) + "\n")

# ---- every sample, for the plots: one gnuplot block per series
def raw_unsorted(path):
    try:
        return [int(x) for x in open(path) if x.strip()]
    except FileNotFoundError:
        return []


with open(E["R_SAMPLES"], "w") as f:
    f.write("# bench/scale-bench.sh samples: one block per series (two blank lines apart), headed\n"
            "# '# FILES SYSTEM PHASE OP'; one sample a line, in microseconds, in the order taken\n\n")
    for n in cols:
        series = [("sigilfs", ph, op, "%s-%s.txt" % (ph, op)) for ph in ("cold", "warm", "cached")
                  for op in ("stat", "read")]
        series += [("tmpfs", "-", op, "tmpfs-%s.txt" % op) for op in ("stat", "read")]
        for d in ("t/d00000", "big10k", "big100k"):
            series += [("sigilfs", "readdir", d, "readdir-%s.txt" % d.replace("/", "_")),
                       ("tmpfs", "readdir", d, "tmpfs-readdir-%s.txt" % d.replace("/", "_"))]
        for fs_, ph, op, fn in series:
            v = raw_unsorted(os.path.join(E["R_RAW"], str(n), fn))
            if not v:
                continue
            f.write("# %d %s %s %s\n" % (n, fs_, ph, op))
            f.write("".join("%.2f\n" % (x / 1e3) for x in v))
            f.write("\n\n")

# ---- the cost table for the plots
C = ["files", "mount_cold_ms", "mount_warm_ms", "rss_mount_mib", "rss_ops_hwm_mib", "rss_walk_hwm_mib",
     "rssanon_walk_mib", "stat_cold_p50_us", "stat_cold_p99_us", "stat_warm_p50_us", "stat_warm_p99_us",
     "stat_cached_p50_us", "stat_cached_p99_us", "read_warm_p50_us", "read_warm_p99_us", "store_bytes_per_file",
     "tmpfs_bytes_per_file", "walk_us_per_entry", "tmpfs_stat_p99_us", "rss_cold_hwm_mib"]
with open(E["R_COST"], "w") as f:
    f.write("# " + " ".join(C) + "\n")
    for n in cols:
        def us(x):
            return x / 1e3 if x is not None else None

        def o(phase, op, k):
            v = ops(n, phase, op)
            return us(v[k]) if v else None
        w = walk(n, "sigilfs")
        vals = [n, (pct(nums("%d.mount_cold" % n), 50) or 0) / 1e6, (pct(nums("%d.mount_warm" % n), 50) or 0) / 1e6,
                (num("%d.rss_mount.VmRSS" % n) or 0) / 1024, (num("%d.rss_ops.VmHWM" % n) or 0) / 1024,
                (num("%d.rss_walk.VmHWM" % n) or 0) / 1024 if num("%d.rss_walk.VmHWM" % n) else None,
                (num("%d.rss_walk.RssAnon" % n) or 0) / 1024 if num("%d.rss_walk.RssAnon" % n) else None,
                o("cold", "stat", 1), o("cold", "stat", 2), o("warm", "stat", 1), o("warm", "stat", 2),
                o("cached", "stat", 1), o("cached", "stat", 2), o("warm", "read", 1), o("warm", "read", 2),
                ratio(num("%d.store_du" % n), n), ratio(num("%d.tmpfs.used" % n), n),
                w[1] * 1e6 / w[0] if w else None, o("tmpfs", "stat", 2),
                (num("%d.rss_cold_stat.VmHWM" % n) or 0) / 1024]
        f.write(" ".join("NaN" if v is None else ("%g" % v) for v in vals) + "\n")
