"""What a sweep found, as plain computation over trial scores (no Ray, no MLflow): configuration
groups, seed medians, paired seed statistics, comparisons and figures."""
