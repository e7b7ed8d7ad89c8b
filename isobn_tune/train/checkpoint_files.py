"""The files of a trial checkpoint directory: written by training, read by tracking and tools.

While a trial may still run (resume, a pause, a PBT exploit) each of its kept checkpoints holds all
three files. Once it has finished, only what ``export`` and the records need stays: the best model
and the isotropy statistics in its newest checkpoint, the statistics alone in older ones
(:mod:`isobn_tune.sweep.checkpoint_thinning`).
"""

from __future__ import annotations

CHECKPOINT_PREFIX = "checkpoint_"  # Tune's checkpoint directories in a trial's directory, numbered
CHECKPOINT_FILE = "trainer_state.pt"  # model, optimizer, scheduler, RNG, epoch, history (torch.save)
BEST_MODEL_FILE = "best_model.pt"  # the best epoch's model state dict (with IsoBN's statistics), torch.save
ISOTROPY_FILE = "isotropy.npz"  # the [CLS] isotropy statistics before and after fine-tuning
