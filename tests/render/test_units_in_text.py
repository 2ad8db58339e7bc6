"""Units in the report text follow the key: a cgroup finding's growth rate (evidence `per_s`,
+3 MiB/s on this host) printed as "35.5 d" because a bare `per_s` ends in `_s` like a duration."""
from __future__ import annotations

from hostdiag.render.common import fmt_value


def test_a_rate_is_never_a_duration():
    assert fmt_value("per_s", 3145728.0) == "3145728.0/s"
    assert fmt_value("fds_per_s", 10.0) == "10.0/s"
    assert fmt_value("eta_s", 55) == "55 s"
    assert fmt_value("evidence", {"per_s": 2.5, "eta_s": 90}) == "per_s=2.5/s eta_s=90 s"
