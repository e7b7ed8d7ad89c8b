"""Data: the GLUE task registry, reading GLUE splits (local folder, hub or the bundled sample),
tokenisation cached on disk, and the batches a trial trains on."""

BATCHINGS = ("random", "length_grouped")  # how a trial's training batches are formed: batches.train_batches
