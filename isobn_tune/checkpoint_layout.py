"""The files of a trial checkpoint directory: written by training, read by tracking and tools."""

from __future__ import annotations

CHECKPOINT_FILE = "trainer_state.pt"  # model, optimizer, scheduler, RNG, epoch, history (torch.save)
BEST_MODEL_FILE = "best_model.pt"  # the best epoch's model state dict (with IsoBN's statistics), torch.save
ISOTROPY_FILE = "isotropy.npz"  # the [CLS] isotropy statistics before and after fine-tuning
