from base.base_data_loader import BaseDataLoader as BaseDataLoader
from base.base_model import BaseModel as BaseModel
from base.base_trainer import BaseTrainer as BaseTrainer
