"""A sweep on Ray Tune: the search (param space, scheduler, searcher), the trainable, checkpoints, the
sweep directory and its manifest, progress on the console, and extending a finished sweep."""
