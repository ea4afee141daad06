from trainer.trainer import Trainer as Trainer
