"""Studies: the config, the run, the flat result rows, the report and the recommendation."""
