"""Plugin variants whose outputs or manners are garbage, for the trust tests: none may come out `ok`."""

import os
import subprocess
import sys
import time

import torch

from variants import register


def _exact(q, k, v, causal):
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, N_q, N_kv)
    if causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return s.softmax(-1) @ v


@register("test-nan", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def nan_output(q, k, v, *, causal=False, scale=None):
    """Exact attention with its first row poisoned by NaN."""
    out = _exact(q, k, v, causal).clone()
    out[..., 0, :] = float("nan")
    return out


@register("test-inplace", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def doubles_q(q, k, v, *, causal=False, scale=None):
    """Doubles q in place, then attends with q/2: exact on the first call's inputs, but it wrecks them."""
    with torch.no_grad():
        q.mul_(2)
    return _exact(q / 2, k, v, causal)


_calls = 0


@register("test-exit-third", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def exits_on_third_call(q, k, v, *, causal=False, scale=None):
    """Ends its process with status 0 on its third call: a check must not pass because of it."""
    global _calls
    _calls += 1
    if _calls == 3:
        os._exit(0)
    return _exact(q, k, v, causal)


@register("test-spawner", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def spawns_a_child(q, k, v, *, causal=False, scale=None):
    """Starts a long-lived child process (its pid in ATTNBENCH_TEST_PIDFILE) and leaves it running."""
    path = os.environ.get("ATTNBENCH_TEST_PIDFILE")
    if path and not os.path.exists(path):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(path, "w") as f:
            f.write(str(child.pid))
    return _exact(q, k, v, causal)


@register("test-chatty", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def chatty(q, k, v, *, causal=False, scale=None):
    """Writes 1 MiB to stderr on every call."""
    sys.stderr.write("x" * (2**20 - 1) + "\n")
    return _exact(q, k, v, causal)


@register("test-wrong-shape", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def wrong_shape(q, k, v, *, causal=False, scale=None):
    """Exact attention less its last feature: an `error` row, and no attention map drawn from it."""
    return _exact(q, k, v, causal)[..., :-1]


_ESCAPE = (
    "import os, subprocess, sys\n"
    "os.setsid()\n"
    "quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], **quiet)\n"
    "print(p.pid, flush=True)\n"  # then this middle process exits: the grandchild is an orphan in a session of its own
)


@register("test-escaper", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def escapes(q, k, v, *, causal=False, scale=None):
    """On its first call starts three sleepers that try to outlive the sweep: a plain child, a child in a
    session of its own, and a daemon (double fork and setsid); writes their pids to ATTNBENCH_TEST_PIDFILE,
    then sleeps ATTNBENCH_TEST_SLEEP seconds (0 by default), so a test can kill the sweep meanwhile."""
    path = os.environ.get("ATTNBENCH_TEST_PIDFILE")
    if path and not os.path.exists(path):
        sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
        plain = subprocess.Popen(sleeper)
        session = subprocess.Popen(sleeper, start_new_session=True)
        middle = subprocess.run([sys.executable, "-c", _ESCAPE], capture_output=True, text=True, check=True)
        with open(path + ".partial", "w") as f:
            f.write(f"{plain.pid} {session.pid} {middle.stdout.strip()}")
        os.rename(path + ".partial", path)
        time.sleep(float(os.environ.get("ATTNBENCH_TEST_SLEEP", "0")))
    return _exact(q, k, v, causal)
