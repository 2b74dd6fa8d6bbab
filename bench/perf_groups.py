#!/usr/bin/env python3
"""Groups `perf report --stdio --no-children --sort dso,sym` output (stdin)
into components by symbol name, and prints a Markdown table of the groups
and the top symbols. Self time only: inlined code counts where it was
inlined. Usage: perf report ... | perf_groups.py NAME

With --inclusive (input from `perf report --children --sort sym`), lists
the inclusive share of the functions that mark the request path's stages.
"""

import re
import sys

LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$")

# First match wins. Kernel symbols ([k]) and user-space ones are classified
# apart.
KERNEL = [
    ("kernel: scheduler, futex, context switches", r"futex|schedule|switch_to|finish_task_switch|wake_up|ttwu|enqueue_task|dequeue_task|pick_next|update_curr|select_task_rq|_raw_spin_unlock_irqrestore|irqentry_exit"),
    ("kernel: network (TCP, loopback, epoll, sockets)", r"tcp|ip_|dev_queue|loopback|net_rx|skb|sock|ep_poll|epoll|send|recv|inet|nf_|netif|backlog|napi|softirq|__x64_sys_(read|write)"),
    ("kernel: file writes (JetStream store)", r"filemap|folio|generic_perform_write|ext4|xfs|vfs_write|page_cache|iomap"),
]
KERNEL_OTHER = "kernel: other (syscall entry, page faults, copies, timers)"
USER = [
    ("memory allocation (mimalloc; glibc malloc/free)", r"(?<![A-Za-z0-9])_?mi_|malloc|_int_free|cfree|realloc|unlink_chunk|consolidate|tcache|__libc_calloc|alloc::alloc::|__rust_(alloc|dealloc|realloc)"),
    ("memory copies and compares (memcpy/memmove/memcmp)", r"memcpy|memmove|memset|memcmp|bcmp"),
    ("HMAC / SHA-256", r"sha2::|hmac::|sha256|digest::|Sha256"),
    ("JSON (serde_json, serde)", r"serde_json|serde::|indexmap"),
    ("regular expressions (regex, regex-lite)", r"regex"),
    ("hashing and hash maps (SipHash, hashbrown)", r"hash::sip|BuildHasher|hashbrown|hash_one|ahash|foldhash"),
    ("NATS client (async-nats)", r"async_nats|nats::"),
    ("moka caches", r"moka|crossbeam|quanta|tagptr"),
    ("actix actors (mailboxes, addresses)", r"actix::|actix_rt"),
    ("actix-web / actix-http / HTTP parsing", r"actix|httparse|http::|bytes::|bytestring|http_body|h2::"),
    ("tokio runtime, timers, channels", r"tokio::|mio::|parking_lot|std::sync|std::thread|futures_util|futures_core|futures_channel|std::sys"),
    ("metrics (prometheus) and logging (tracing)", r"prometheus|tracing|metrics"),
    ("formatting and strings (fmt, String, time)", r"core::fmt|alloc::fmt|alloc::string|core::str|time::|uuid|ulid|hex::|base64|FromIterator<char>"),
    ("gateway's own code (at_gateway::)", r"at_gateway"),
    ("libc / vdso (other: clock_gettime, pthread, syscalls)", r"libc|ld-linux|vdso|pthread"),
    ("nats-server user space (binary stripped: no symbols)", r"^nats-server "),
]


# Functions whose inclusive time marks a stage of a request (prefix match).
STAGES = [
    "actix_http::h1::dispatcher::InnerDispatcher",
    "at_gateway::",
    "<at_gateway::",
    "async_nats::ConnectionHandler::process",
    "<async_nats::ConnectionHandler::process",
    "async_nats::jetstream::kv::Store::",
    "async_nats::jetstream::context::",
    "moka::sync::cache::Cache",
    "serde_json::ser::to_vec",
    "serde_json::de::from_trait",
    "sha2::",
    "hmac::",
    "prometheus::",
    "_int_malloc",
    "malloc",
    "_int_free",
    "cfree",
    "malloc_consolidate",
    "__memmove",
]
INCL = re.compile(r"^\s*([\d.]+)%\s+([\d.]+)%\s+\[(.)\]\s+(.*?)\s*$")


def inclusive(name):
    best = {}
    for line in sys.stdin:
        m = INCL.match(line)
        if not m:
            continue
        incl, self_, sym = float(m[1]), float(m[2]), m[4]
        if not any(sym.startswith(p) for p in STAGES):
            continue
        if sym not in best or best[sym][0] < incl:
            best[sym] = (incl, self_)
    print(f"| {name}: function (inclusive = itself + callees; nested rows overlap) | inclusive | self |")
    print("|---|---:|---:|")
    for sym, (incl, self_) in sorted(best.items(), key=lambda kv: -kv[1][0])[:40]:
        sym = sym.replace("|", "\\|")
        if len(sym) > 130:
            sym = sym[:127] + "..."
        print(f"| `{sym}` | {incl:.1f} % | {self_:.1f} % |")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--inclusive":
        inclusive(sys.argv[2] if len(sys.argv) > 2 else "process")
        return
    name = sys.argv[1] if len(sys.argv) > 1 else "process"
    rows = []
    for line in sys.stdin:
        m = LINE.match(line)
        if m:
            rows.append((float(m[1]), m[2], m[3], m[4]))
    total = sum(r[0] for r in rows) or 1.0
    groups = {}
    for pct, dso, kind, sym in rows:
        key = f"{dso} {sym}"
        table, fallback = (KERNEL, KERNEL_OTHER) if kind == "k" else (USER, "other")
        for label, pattern in table:
            if re.search(pattern, key):
                break
        else:
            label = fallback
        groups[label] = groups.get(label, 0.0) + pct
    print(f"| {name}: component (self time) | share of samples |")
    print("|---|---:|")
    for label, pct in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"| {label} | {pct * 100 / total:.1f} % |")
    print()
    print(f"| {name}: top symbols | share |")
    print("|---|---:|")
    for pct, dso, kind, sym in sorted(rows, key=lambda r: -r[0])[:25]:
        sym = sym.replace("|", "\\|")
        if len(sym) > 110:
            sym = sym[:107] + "..."
        print(f"| `{sym}` ({dso}) | {pct * 100 / total:.1f} % |")


if __name__ == "__main__":
    main()
