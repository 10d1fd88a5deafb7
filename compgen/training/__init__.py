"""In-domain training of slot autoencoders (Eq. 4.2)."""
from compgen.training.resumable import TrainState
from compgen.training.train_lib import train_and_evaluate
