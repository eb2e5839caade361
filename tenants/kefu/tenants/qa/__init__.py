"""kefu.tenants.qa: quality assurance of recorded calls (scorecards, evaluations, sampling, calibration, disputes, exemplary calls, reports)."""
