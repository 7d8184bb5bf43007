"""Benchmark scripts: each prints the figures a part of attnbench is held to, run by hand, not by the tests.

``python -m harness.bench.selfcheck`` (the timer and memory against torch.utils.benchmark and analytic
sizes, per variant), ``speedcheck`` (the built-ins' speed and memory claims), ``timercheck`` (the timer
against torch.utils.benchmark), ``workloadcheck`` (decode, masks, grouped heads), ``reprocheck`` (whether
a sweep reproduces: A/A, A/B with `plus30`'s 30 %-slower plugin, interval coverage), ``scoremodcheck`` (what
each score modification costs, and SDPA's bias memory). They sit above the
stages and may use any of them.
"""
