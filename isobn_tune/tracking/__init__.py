"""MLflow: the sweep's parent run and a child run per trial, every name used there, catching up after
an outage, reading a sweep back, the report and the UI."""
