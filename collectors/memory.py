"""memory: RAM, swap, swap in/out and major-fault rates, PSI memory, OOM kills, top RSS
processes, cgroups near their memory limit. Reads /proc/meminfo, /proc/vmstat,
/proc/pressure/memory and cgroup memory files; root not needed."""
from __future__ import annotations

import os

import time

from hostdiag.core import cgroups, eta, shell, tree
from hostdiag.core.context import Unavailable
from hostdiag.core.model import Finding
from hostdiag.core.procfs import parse_flat_kv, read_psi
from hostdiag.core.thresholds import Threshold
from hostdiag.core.units import human_bytes, worst_severity

NAME = "memory"
DEFAULT_ENABLED = True
NEEDS = {"procs"}
READS = ["/proc/meminfo", "/proc/vmstat", "/proc/pressure/memory",
         "/sys/fs/cgroup/**/memory.{max,high,current,events,stat}",
         "/sys/fs/cgroup/memory/**/memory.{limit_in_bytes,usage_in_bytes,failcnt,oom_control,stat}"]

UNITS = {
    "available_bytes": ("bytes", False),
    "swap_free_bytes": ("bytes", False),
    "swap_in_pages": ("pages", True),
    "swap_out_pages": ("pages", True),
    "major_faults": ("count", True),
    "oom_kills": ("count", True),
    "psi_some_avg10": ("percent", False),
    "psi_full_avg10": ("percent", False),
}
THRESHOLDS = {
    "memory.available_pct": Threshold(10, 5, "percent", "MemAvailable as % of MemTotal (lower is worse)",
                                      higher_is_worse=False),
    # vmstat si+so of 1 MiB/s (256 4-KiB pages) sustained over the window is already felt.
    "memory.swap_pages_per_s": Threshold(256, 2560, "pages/s", "swap-in + swap-out pages per second over the window"),
    "memory.psi_full_avg10": Threshold(5, 20, "percent",
                                       "PSI memory full avg10: share of time ALL non-idle tasks stalled on memory"),
    "memory.oom_kills_window": Threshold(1, 1, "count", "OOM kills (/proc/vmstat oom_kill) during the window"),
    "memory.cgroup_pct": Threshold(90, 97, "percent",
                                   "cgroup working set (usage - inactive file cache) as % of its memory limit"),
    "memory.available_eta_s": eta.threshold("MemAvailable falls to 0"),
    "memory.swap_eta_s": eta.threshold("swap is full (SwapFree falls to 0)"),
    "memory.cgroup_eta_s": eta.threshold("a memory cgroup's working set reaches its limit"),
}
TOP = 5
MAX_CGROUPS_SHOWN = 5
# v1 "no limit" is PAGE_COUNTER_MAX pages (9223372036854771712 on x86_64); anything this big is unlimited.
_V1_UNLIMITED = 1 << 62
# A cgroup whose limit was hit during the window (memory.events max / v1 failcnt rose) is only
# worth a warning when its working set is also this close: page cache alone hits the limit routinely.
_HIT_MIN_PCT = 80.0
# Limited cgroups followed tick by tick for their time to the limit.
TRACK_CGROUPS = 32
MIN_CG_GROWTH = 4 << 20           # less working-set growth than this in the window is noise
MIN_HOST_FALL = 16 << 20          # MemAvailable moves this much on an idle host: not a trend


def parse_meminfo(text: str) -> dict[str, int]:
    """'MemTotal:  16325648 kB' -> {'MemTotal': 16717463552}; unit-less lines
    (HugePages_Total: 0) stay counts. Tolerates 'Name:value' without a space."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if not sep or not name.strip():
            continue
        parts = rest.split()
        if not parts:
            continue
        try:
            v = int(parts[0])
        except ValueError:
            continue
        if len(parts) > 1 and parts[1].lower() == "kb":
            v *= 1024
        out[name.strip()] = v
    return out


def parse_oom_control(text: str) -> dict[str, int]:
    """v1 memory.oom_control ('oom_kill_disable 0\\nunder_oom 0\\noom_kill 3'); oom_kill is 4.13+."""
    return parse_flat_kv(text)


def _limit(v: int | None) -> int | None:
    return None if v is None or v >= _V1_UNLIMITED else v


def read_cgroups(ctx, deadline=None) -> dict[str, dict]:
    """{cgroup: {'version', 'usage_bytes', 'limit_bytes', 'high_bytes', 'events': {...}, 'dir'}}
    for every visible memory cgroup that has a usage file (bounded by cgroups.MAX_CGROUPS)."""
    out: dict[str, dict] = {}
    for version, rel, d in cgroups.walk(ctx, "memory"):
        if deadline is not None and deadline.expired():
            break
        if version == 2:
            usage = cgroups.read_value(os.path.join(d, "memory.current"))
            if usage is None:
                continue  # the root, or a hybrid unified tree without the memory controller
            limits = [cgroups.read_value(os.path.join(d, f)) for f in ("memory.max", "memory.high")]
            ev = parse_flat_kv(ctx.read_optional(os.path.join(d, "memory.events"), 1 << 14) or "")
            events = {k: ev[k] for k in ("max", "oom", "oom_kill") if k in ev}
        else:
            usage = cgroups.read_value(os.path.join(d, "memory.usage_in_bytes"))
            if usage is None:
                continue
            limits = [_limit(cgroups.read_value(os.path.join(d, "memory.limit_in_bytes"))), None]
            events = {}
            failcnt = cgroups.read_value(os.path.join(d, "memory.failcnt"))
            if failcnt is not None:
                events["max"] = failcnt
            oc = parse_oom_control(ctx.read_optional(os.path.join(d, "memory.oom_control"), 1 << 12) or "")
            if "oom_kill" in oc:
                events["oom_kill"] = oc["oom_kill"]
            if oc.get("under_oom"):
                events["under_oom"] = oc["under_oom"]
        out[f"v{version}:{rel}"] = {"version": version, "cgroup": rel, "usage_bytes": usage,
                                    "limit_bytes": limits[0], "high_bytes": limits[1],
                                    "events": events, "dir": d}
    return out


def _working_set(ctx, cg: dict) -> int:
    """usage minus inactive file cache (what kubelet calls the working set): cache is reclaimable."""
    st = parse_flat_kv(ctx.read_optional(os.path.join(cg["dir"], "memory.stat"), 1 << 16) or "")
    inactive = st.get("inactive_file" if cg["version"] == 2 else "total_inactive_file", 0)
    return max(0, cg["usage_bytes"] - inactive)


def cgroups_near_limit(ctx, before: dict | None, after: dict, window_s: float,
                       points: dict | None = None) -> tuple[list[dict], int]:
    """Limited cgroups, worst first, with usage/working-set % and event deltas over the window,
    and the time until the working set reaches the limit where it grows steadily (`points`)."""
    rows = []
    limited = 0
    for key, cg in after.items():
        eff = min((x for x in (cg["limit_bytes"], cg["high_bytes"]) if x), default=None)
        if not eff:
            continue
        limited += 1
        b = (before or {}).get(key)
        rose = None
        if b is not None and window_s > 0:
            rose = {k: v - b["events"].get(k, v) for k, v in cg["events"].items()}
        usage_pct = cg["usage_bytes"] / eff * 100
        ws = _working_set(ctx, cg) if usage_pct >= 50 or rose and any(rose.values()) else cg["usage_bytes"]
        ws_pct = round(ws / eff * 100, 1)
        row = {"cgroup": cg["cgroup"], "cgroup_version": cg["version"], "limit_bytes": eff,
               "usage_bytes": cg["usage_bytes"], "usage_pct": round(usage_pct, 1),
               "working_set_bytes": ws, "working_set_pct": ws_pct,
               "limit_hits": cg["events"].get("max"), "oom_kills": cg["events"].get("oom_kill"),
               "limit_hits_window": rose.get("max") if rose else None,
               "oom_kills_window": (rose.get("oom_kill") or rose.get("oom") or 0) if rose is not None else None}
        e = eta.time_to_limit((points or {}).get(key) or [], eff, current=ws, min_change=MIN_CG_GROWTH)
        row.update({"per_s": None if e.rate_per_s is None else round(e.rate_per_s),
                    **{k: v for k, v in e.evidence().items() if k != "rate_per_s"}})
        if ws_pct >= 50 or row["oom_kills"] or row["limit_hits_window"] or cg["events"].get("under_oom") \
                or row["eta_s"] is not None:
            rows.append(row)
    rows.sort(key=lambda r: (bool(r["oom_kills_window"]), r["eta_s"] is not None, -(r["eta_s"] or 0),
                             r["working_set_pct"]), reverse=True)
    return rows[:MAX_CGROUPS_SHOWN], limited


def sample(ctx, state):
    # Each file on its own: one missing still leaves the others worth reporting (collect()
    # names the blind spot), and none at all is "unavailable" there too.
    vm = parse_flat_kv(ctx.read_optional(ctx.proc_path("vmstat")) or "")
    out: dict[str, float] = {}
    for key, name in (("pswpin", "swap_in_pages"), ("pswpout", "swap_out_pages"),
                      ("pgmajfault", "major_faults"), ("oom_kill", "oom_kills")):
        if key in vm:
            out[name] = vm[key]
    mi = parse_meminfo(ctx.read_optional(ctx.proc_path("meminfo")) or "")
    if "MemAvailable" in mi:
        out["available_bytes"] = mi["MemAvailable"]
    if mi.get("SwapTotal"):
        out["swap_free_bytes"] = mi.get("SwapFree", 0)
    psi = read_psi(ctx, "memory")
    if psi:
        for k in ("some_avg10", "full_avg10"):
            if k in psi:
                out[f"psi_{k}"] = psi[k]
    if "cg0" not in state:
        state["cg0"] = read_cgroups(ctx)
        state["cg_track"] = {k: cg for k, cg in state["cg0"].items()
                             if cg["limit_bytes"] or cg["high_bytes"]}
        state["cg_track"] = dict(list(state["cg_track"].items())[:TRACK_CGROUPS])
        state["cg_t0"] = time.monotonic()
    track_cgroups(ctx, state)
    return out


def track_cgroups(ctx, state) -> None:
    """One working-set point per limited cgroup per tick, for its time to the limit."""
    now = time.monotonic() - state.get("cg_t0", 0.0)
    pts = state.setdefault("cg_points", {})
    for key, cg in state.get("cg_track", {}).items():
        usage = cgroups.read_value(os.path.join(cg["dir"], "memory.current" if cg["version"] == 2
                                                else "memory.usage_in_bytes"))
        if usage is not None:
            pts.setdefault(key, []).append((now, _working_set(ctx, {**cg, "usage_bytes": usage})))


def _rate(job, key: str) -> float | None:
    s = job.s(key)
    r = s.rate() if s is not None else None
    return None if r is None else round(r, 1)


def _delta(job, key: str) -> int | None:
    s = job.s(key)
    d = s.delta() if s is not None and job.window_s > 0 else None
    return None if d is None or d < 0 else int(d)    # a counter going back is a reset, not a delta


def collect(job):
    ctx, state = job.ctx, job.state
    missing: list[str] = []
    mi_text = tree.read_proc(ctx, "meminfo", missing)
    vm_text = tree.read_proc(ctx, "vmstat", missing)
    psi = read_psi(ctx, "memory")
    if mi_text is None and vm_text is None and psi is None:
        raise Unavailable("; ".join(missing) + ": no memory figures at all")
    mi = parse_meminfo(mi_text or "")
    total = mi.get("MemTotal")
    if mi_text is not None and not total:
        raise Unavailable(f"{ctx.proc_path('meminfo')} has no MemTotal: not a Linux procfs?")
    if mi_text is None:
        job.blind_spot(f"{missing[0]}: RAM and swap size and use unknown")
    avail = mi.get("MemAvailable")
    if avail is None and mi_text is not None:
        job.blind_spot("MemAvailable missing from /proc/meminfo (kernel < 3.14): available memory unknown")
    swap_total, swap_free = mi.get("SwapTotal"), mi.get("SwapFree")
    swap_used = swap_total - swap_free if swap_total is not None and swap_free is not None else None
    vm = parse_flat_kv(vm_text) if vm_text else {}
    if vm_text is None:
        job.blind_spot(f"{missing[-1]}: no swap/fault rates or OOM kill count")
    oom_total = vm.get("oom_kill")
    if vm_text is not None and oom_total is None:
        job.blind_spot("/proc/vmstat has no oom_kill (kernel < 4.13): OOM kills not counted")

    data: dict = {
        "total_bytes": total,
        "available_bytes": avail,
        "available_pct": round(avail / total * 100, 1) if avail is not None and total else None,
        "used_bytes": total - avail if avail is not None and total else None,
        "buff_cache_bytes": sum(mi.get(k, 0) for k in ("Buffers", "Cached", "SReclaimable")) if mi_text else None,
        "swap_total_bytes": swap_total,
        "swap_used_bytes": swap_used,
        "swap_used_pct": round(swap_used / swap_total * 100, 1) if swap_total and swap_used is not None else None,
        # Rates need two samples: None with --window 0, never a fake zero.
        "swap_in_pages_per_s": _rate(job, "swap_in_pages"),
        "swap_out_pages_per_s": _rate(job, "swap_out_pages"),
        "major_faults_per_s": _rate(job, "major_faults"),
        "oom_kills_total": oom_total,
        "oom_kills_window": _delta(job, "oom_kills") if oom_total is not None else None,
        "window_s": job.window_s,
    }
    page = tree.page_size(ctx)      # of the host read, not this one: swap pages/s as MiB/s
    if page is not None:
        data["page_size_bytes"] = page
    data["psi"] = psi
    if psi is None:
        job.blind_spot(tree.psi_blind_spot(ctx, "memory"))

    after = read_cgroups(ctx, job.deadline)
    if not cgroups.roots(ctx, "memory"):
        job.blind_spot(f"no memory cgroup hierarchy under {ctx.sys_path('fs', 'cgroup')} (v2 cgroup.controllers "
                       "or v1 memory/): cgroup memory limits not checked")
    if job.window_s > 0:
        track_cgroups(ctx, state)   # a last point at collect time
    data["cgroups"], data["cgroups_limited"] = cgroups_near_limit(ctx, state.get("cg0"), after, job.window_s,
                                                                  state.get("cg_points"))
    data["available_eta"] = data["swap_eta"] = None
    if job.window_s > 0 and avail is not None and total:
        a = eta.time_to_limit(job.s("available_bytes") or [], 0, current=avail, rising=False,
                              min_change=MIN_HOST_FALL)
        if a.rate_per_s is not None and a.rate_per_s > 0:
            data["available_eta"] = {**a.evidence(), "limit_fraction": round(1 - avail / total, 4)}
    if job.window_s > 0 and swap_total and swap_used is not None:
        sw = eta.time_to_limit(job.s("swap_free_bytes") or [], 0, current=swap_total - swap_used,
                               rising=False, min_change=MIN_HOST_FALL)
        if sw.rate_per_s is not None and sw.rate_per_s > 0:
            data["swap_eta"] = {**sw.evidence(), "limit_fraction": round(swap_used / swap_total, 4)}

    scan = job.scan
    if scan is None:
        data["top_rss"] = None
        job.blind_spot("process scan unavailable: no top RSS processes")
    else:
        procs = sorted((p for p in scan.procs.values() if p.rss_bytes and not is_self(p)),
                       key=lambda p: p.rss_bytes, reverse=True)
        data["top_rss"] = [{"pid": p.pid, "name": p.name, "rss_bytes": p.rss_bytes,
                            "rss_pct": round(p.rss_bytes / total * 100, 1) if total else None,
                            "cmdline": scan.cmdline(p.pid)}
                           for p in procs[:TOP]]
    return data


def is_self(p) -> bool:
    """hostdiag itself: never the subject of a finding (procscan's is_self once merged)."""
    return bool(getattr(p, "is_self", False)) or p.pid == os.getpid()


# The biggest process is named as the subject of a host-wide memory finding only when it holds
# this share of RAM: then the evidence ties it to the shortage; otherwise it is just on top.
SUBJECT_MIN_RSS_PCT = 20.0


def _top_subject(d: dict) -> dict:
    top = (d.get("top_rss") or [None])[0]
    if not top or (top.get("rss_pct") or 0) < SUBJECT_MIN_RSS_PCT:
        return {}
    return {"pid": top["pid"], "name": top["name"]}


def _mib(b: int | None) -> str:
    return "?" if b is None else f"{b / 2**20:,.0f} MiB"


def findings(section, th):
    d = section.data
    out: list[Finding] = []
    subject = _top_subject(d)
    top = (d.get("top_rss") or [None])[0]
    who = f"; top: {top['name']} (pid {top['pid']}) {_mib(top['rss_bytes'])}" if top else ""
    psi = d.get("psi") or {}

    pct = d.get("available_pct")
    ae = d.get("available_eta") or {}
    l_eta = th.level("memory.available_eta_s", ae.get("eta_s"))
    level = worst_severity((th.level("memory.available_pct", pct), l_eta))
    if level:
        title = f"Only {pct}% of memory available ({_mib(d['available_bytes'])} of {_mib(d['total_bytes'])}){who}"
        if l_eta:
            title = (f"Available memory exhausted in {eta.in_words(ae['eta_s'])} at this rate "
                     f"(-{human_bytes(ae['rate_per_s'])}/s, {_mib(d['available_bytes'])} left of "
                     f"{_mib(d['total_bytes'])}){who}")
        out.append(Finding(
            id="memory.exhaustion", category="memory", severity=level,
            title=title,
            subject=subject,
            evidence=eta.compact({
                "available_pct": pct, "available_bytes": d["available_bytes"], "total_bytes": d["total_bytes"],
                "swap_used_bytes": d.get("swap_used_bytes"), "psi_some_avg10": psi.get("some_avg10"),
                "top_rss": d.get("top_rss"), "limit": "MemAvailable" if ae else None,
                "eta_s": ae.get("eta_s"), "rate_per_s": ae.get("rate_per_s"), "measured_s": ae.get("measured_s"),
                "limit_fraction": round(1 - pct / 100, 4) if pct is not None else None}),
            impact="the kernel is about to reclaim hard or OOM-kill: the biggest process (often the service) dies first",
            verify="free -m; ps -eo pid,rss,etime,comm --sort=-rss | head",
            stabilize=["Identify the top RSS process (the verify command lists it): expected size or a leak? Capture a heap profile if you can",
                       "Restart the leaking holder in a controlled way (drain it first) before the OOM killer picks for you",
                       "Stop or pause non-essential memory users (batch jobs, caches) on this host",
                       "Do not add swap or raise overcommit to 'buy time': it turns a clean OOM into hours of thrashing",
                       "Do not drop caches (echo 3 > drop_caches): cache is already counted as available; it only adds I/O"],
            score=(100 - pct) + (1e6 / max(ae["eta_s"], 1.0) if l_eta else 0)))

    se = d.get("swap_eta") or {}
    level = th.level("memory.swap_eta_s", se.get("eta_s"))
    if level:
        out.append(Finding(
            id="memory.swap_exhaustion", category="memory", severity=level,
            title=f"Swap full in {eta.in_words(se['eta_s'])} at this rate (+{human_bytes(se['rate_per_s'])}/s, "
                  f"{_mib(d.get('swap_used_bytes'))} of {_mib(d.get('swap_total_bytes'))} used)",
            subject={},
            evidence={"swap_used_bytes": d.get("swap_used_bytes"), "swap_total_bytes": d.get("swap_total_bytes"),
                      "limit": "SwapTotal", "available_pct": pct, **se},
            impact="once swap is full as well, the OOM killer fires; before that the host thrashes",
            verify="free -m; vmstat 1 5   # si/so columns",
            stabilize=["Find what grows (processes.rss_growth, top RSS) and restart or cap it",
                       "Do not add swap to buy time: it lengthens the thrashing"],
            score=1e6 / max(se["eta_s"], 1.0)))

    swap = None
    if d.get("swap_in_pages_per_s") is not None and d.get("swap_out_pages_per_s") is not None:
        swap = round(d["swap_in_pages_per_s"] + d["swap_out_pages_per_s"], 1)
    full10 = psi.get("full_avg10")
    l_swap, l_psi = th.level("memory.swap_pages_per_s", swap), th.level("memory.psi_full_avg10", full10)
    level = worst_severity((l_swap, l_psi))
    if level:
        page = d.get("page_size_bytes")
        mib = f" ({swap * page / 2**20:.1f} MiB/s)" if page else ""
        what = f"swapping {swap:g} pages/s{mib}" if l_swap else "memory thrashing"
        stall = f", all tasks stalled on memory {full10}% of the last 10 s" if full10 is not None else ""
        out.append(Finding(
            id="memory.swap_storm", category="memory", severity=level,
            title=f"Memory pressure: {what}{stall}{who}",
            subject=subject,
            evidence={"swap_pages_per_s": swap, "swap_in_pages_per_s": d.get("swap_in_pages_per_s"),
                      "swap_out_pages_per_s": d.get("swap_out_pages_per_s"),
                      "major_faults_per_s": d.get("major_faults_per_s"), "psi_full_avg10": full10,
                      "psi_some_avg10": psi.get("some_avg10"), "available_pct": d.get("available_pct"),
                      "swap_used_bytes": d.get("swap_used_bytes")},
            impact="processes wait on disk for their own memory: everything on the host slows by orders of magnitude",
            verify="vmstat 1 5   # si/so columns; and: cat /proc/pressure/memory",
            stabilize=["Reduce the working set: stop or restart the biggest memory user (top RSS above)",
                       "Move load off this host while it recovers",
                       "Do not add more swap: it lengthens the thrashing instead of ending it",
                       "Do not run swapoff now: it forces everything back into RAM at once and can trigger the OOM killer"],
            score=max(swap or 0, (full10 or 0) * 100)))

    oom_w, oom_t = d.get("oom_kills_window"), d.get("oom_kills_total")
    cgs = d.get("cgroups") or []
    oom_cg = next((c for c in cgs if c.get("oom_kills_window")), None) or \
        next((c for c in cgs if c.get("oom_kills")), None)
    # The OOM counter names no victim: only a cgroup whose own counter rose ties one to it.
    oom_subject = {"cgroup": oom_cg["cgroup"]} if oom_cg else {}
    level = th.level("memory.oom_kills_window", oom_w)
    common = dict(
        id="memory.oom_kills", category="memory", subject=oom_subject,
        evidence={"oom_kills_window": oom_w, "oom_kills_total": oom_t, "window_s": d.get("window_s"),
                  "cgroup": oom_cg["cgroup"] if oom_cg else None,
                  "cgroup_oom_kills": oom_cg.get("oom_kills") if oom_cg else None},
        verify="dmesg -T | grep -iE 'killed process|out of memory' | tail   # or: journalctl -k -g 'Killed process'",
    )
    if level:
        where = f" in cgroup {oom_cg['cgroup']}" if oom_cg and oom_cg.get("oom_kills_window") else ""
        out.append(Finding(
            severity=level, title=f"OOM killer fired {oom_w} time(s) during the {d.get('window_s'):g}s window{where}",
            impact="processes are being killed right now for lack of memory: requests fail, state may be lost",
            stabilize=["Find the victim and the cgroup in the kernel log (verify command) and restart what was killed",
                       "Relieve memory: see memory.exhaustion / memory.cgroup_near_limit for the holder",
                       "Do not disable the OOM killer or set oom_score_adj -1000 everywhere: the host then hangs instead"],
            score=float(oom_w), **common))
    elif oom_t:
        out.append(Finding(
            severity="info",
            title=f"{oom_t} OOM kill(s) since boot (none during the window; the counter has no timestamp)",
            impact="something was OOM-killed at some point since boot; check the kernel log for when and what",
            stabilize=["Check the kernel log for the time and victim; if recent, look at memory.* findings"],
            score=float(oom_t), **common))

    for cg in cgs:
        l_eta = th.level("memory.cgroup_eta_s", cg.get("eta_s"))
        level = worst_severity((th.level("memory.cgroup_pct", cg["working_set_pct"]), l_eta))
        why = f"working set {cg['working_set_pct']}% of its {_mib(cg['limit_bytes'])} limit"
        if l_eta:
            why = (f"memory limit reached in {eta.in_words(cg['eta_s'])} at this rate "
                   f"(+{human_bytes(cg['per_s'])}/s); " + why)
        if cg.get("oom_kills_window"):
            level, why = "critical", f"{cg['oom_kills_window']} OOM kill(s) during the window; " + why
        elif cg.get("limit_hits_window") and cg["working_set_pct"] >= _HIT_MIN_PCT:
            level = worst_severity((level, "warning"))
            why = f"hit its limit {cg['limit_hits_window']} time(s) during the window; " + why
        if not level:
            continue
        base = "/sys/fs/cgroup" + ("" if cg["cgroup_version"] == 2 else "/memory")
        files = "memory.current memory.max memory.events" if cg["cgroup_version"] == 2 else \
            "memory.usage_in_bytes memory.limit_in_bytes memory.failcnt memory.oom_control"
        path = base + cg["cgroup"].rstrip("/")
        out.append(Finding(
            id="memory.cgroup_near_limit", category="memory", severity=level,
            title=f"cgroup {cg['cgroup']}: {why}",
            subject={"cgroup": cg["cgroup"]}, evidence=eta.compact({**cg, "limit": "memory cgroup limit"}),
            impact="processes in this cgroup stall in reclaim and are OOM-killed at the limit while the host has memory free",
            verify=f"(cd {shell.quote(path)} && head {files})",
            stabilize=["Restart or shrink the biggest process in this cgroup (systemd-cgtop -m shows it)",
                       "Raise the limit if the host has headroom (systemctl set-property UNIT MemoryMax=...)",
                       "Do not remove the limit on a shared host: one leak then takes the whole host down"],
            score=cg["working_set_pct"] + (100 if cg.get("oom_kills_window") else 0)
            + (1e6 / max(cg["eta_s"], 1.0) if l_eta else 0)))
    return out
