"""The default trainer: what one step computes (validation runs the same step, without gradients).

This is the place to change how a batch is used (several inputs, a dict batch, an extra loss
term, images for TensorBoard). The loop in base/base_trainer.py runs these steps and keeps every
guarantee around them: mixed precision, accumulation, DDP, clipping, the NaN guard, exact resume.
"""

from base import BaseTrainer


class Trainer(BaseTrainer):
    """Supervised training on `(input, target)` batches, with `criterion(output, target)`."""

    def training_step(self, batch):
        data, target = batch
        output = self.model(data)
        return {"loss": self.criterion(output, target), "output": output, "target": target}
