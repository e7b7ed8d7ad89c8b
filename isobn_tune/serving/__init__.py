"""A trained trial as a product: a classifier directory that loads in one call, its export from a
sweep, batched predictions and the MLflow model."""
