"""A plugin whose import fails."""

import attnbench_no_such_dependency  # noqa: F401
