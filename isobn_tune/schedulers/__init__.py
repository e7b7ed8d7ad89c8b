"""Schedulers: each a section of the space file that builds its Tune scheduler and checks itself
against the other sections (:mod:`.registry` names them all). The group schedulers' decisions are
plain code over (configuration, seed, epoch, score) (:mod:`.decisions`), apart from their Tune
adapter (:mod:`.group`)."""
