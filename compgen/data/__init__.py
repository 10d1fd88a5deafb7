"""The data layer: true generators, ID/OOD splits, TFDS builders, your own data, batching."""
from compgen.data import tfds_builders  # registers compgen_sprites and compgen_synthetic
from compgen.data import pug  # registers compgen_pug (PUG from your manual download)
from compgen.data.pipeline import BatchIterator, DataError, dataset_spec, load_split
from compgen.data.scenes import SPLITS, DatasetSpec, generate, true_generator
from compgen.data.splits import SplitSpec
from compgen.data.sprites import SpritesSpec
from compgen.data.synthetic import SyntheticSpec
