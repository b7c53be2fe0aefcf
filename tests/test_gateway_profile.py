"""The gateway profile's summary (benchmarks/gateway/profile.py) on a perf
report's text: each function in the group of its crate, generic wrappers by
the crate they wrap, the kernel by perf's ``[k]``."""

from __future__ import annotations

import pytest

from benchmarks.gateway.profile import crate_of, group_of, summarise

REPORT = """\
# Total Lost Samples: 0
#
# Samples: 12K of event 'cpu-clock:ppp'
# Event count (approx.): 6003000000
#
# Overhead  Shared Object      Symbol
# ........  .................  ......
#
    20.00%  [kernel.kallsyms]  [k] tcp_sendmsg_locked
    12.50%  gateway            [.] hyper::proto::h1::role::Server::parse
    10.00%  gateway            [.] tokio::runtime::scheduler::multi_thread::worker::Context::run
     7.50%  gateway            [.] core::ptr::drop_in_place<hyper_util::client::legacy::Client<C,B>>
     5.00%  gateway            [.] <axum::routing::Router as tower_service::Service<R>>::call
     5.00%  gateway            [.] _mi_malloc_generic
     4.00%  libc.so.6          [.] __memmove_avx_unaligned_erms
     3.00%  gateway            [.] gateway::lease::Leases::take
     2.00%  gateway            [.] prometheus::histogram::Histogram::observe
     1.00%  gateway            [.] tracing_subscriber::fmt::format::Format::format_event
     0.50%  gateway            [.] uuid::v4::new_v4
"""


@pytest.mark.parametrize(
    ("function", "crate"),
    [
        ("hyper::proto::h1::role::Server::parse", "hyper"),
        ("<axum::routing::Router as tower_service::Service<R>>::call", "axum"),
        ("core::ptr::drop_in_place<hyper_util::client::legacy::Client<C,B>>", "hyper_util"),
        ("<alloc::boxed::Box<gateway::proxy::Forward> as core::future::Future>::poll", "gateway"),
        ("std::sys::pal::unix::time::Timespec::now", "std"),
    ],
)
def test_crate_of(function: str, crate: str) -> None:
    assert crate_of(function) == crate


def test_groups() -> None:
    assert group_of("[kernel.kallsyms]", "tcp_sendmsg_locked") == "kernel"
    assert group_of("gateway", "_mi_malloc_generic") == "alloc"
    assert group_of("libc.so.6", "__memmove_avx_unaligned_erms") == "alloc"
    assert group_of("gateway", "uuid::v4::new_v4") == "other"


def test_summarise() -> None:
    profile = summarise(REPORT, connections=32, seconds=5)
    assert profile.samples == 12_000
    assert profile.groups == pytest.approx(
        {
            "kernel": 20.0,
            "hyper": 20.0,
            "tokio": 10.0,
            "axum": 5.0,
            "alloc": 9.0,
            "gateway": 3.0,
            "metrics": 2.0,
            "log": 1.0,
            "other": 0.5,
        }
    )
    assert profile.top[0] == (20.0, "tcp_sendmsg_locked")
    table = profile.table()
    assert "12000 samples" in table
    assert "| kernel: sockets, TCP on loopback, epoll, scheduling | 20.0% |" in table
