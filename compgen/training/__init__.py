"""In-domain training of slot autoencoders (Eq. 4.2)."""
from compgen.training.train_lib import TrainState, train_and_evaluate
