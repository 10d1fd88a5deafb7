"""Decoders and encoders by name: `make_decoder(model_config, output_shape)`, `make_encoder`.

`model_config` is `config.model` (see `compgen.config_lib.model_config`).
"""
from __future__ import annotations

import ml_collections

from compgen import errors
from compgen.models.autoencoder import Autoencoder, model_input, per_example_mse
from compgen.models.decoders import (AdditiveDecoder, AlphaDecoder, ConvDecoder,
                                     TransformerDecoder, UnconstrainedConvDecoder,
                                     UnconstrainedDecoder,
                                     interaction_penalty)
from compgen.models.encoders import (CNNEncoder, ConvEncoder, QueryTransformerEncoder,
                                     SlotAttentionEncoder, TransformerEncoder)

DECODERS = {"additive": AdditiveDecoder, "alpha": AlphaDecoder, "conv": ConvDecoder,
            "transformer": TransformerDecoder, "unconstrained": UnconstrainedDecoder,
            "unconstrained_conv": UnconstrainedConvDecoder}
ENCODERS = {"cnn": CNNEncoder, "conv": ConvEncoder, "transformer": TransformerEncoder,
            "slot_attention": SlotAttentionEncoder, "query_transformer": QueryTransformerEncoder}


def _kwargs(section) -> dict:
  return {k: tuple(v) if isinstance(v, list) else v for k, v in section.to_dict().items()}


def make_decoder(model: ml_collections.ConfigDict, output_shape: tuple[int, ...]):
  """The decoder named by `model.decoder`, configured by `model.decoders[name]`."""
  if model.decoder not in DECODERS:
    raise errors.ConfigError(
        f"Unknown decoder {model.decoder!r}: choose one of {sorted(DECODERS)}.")
  return DECODERS[model.decoder](output_shape=tuple(output_shape),
                                 **_kwargs(model.decoders[model.decoder]))


def make_encoder(model: ml_collections.ConfigDict, num_slots: int):
  """The encoder named by `model.encoder`, configured by `model.encoders[name]`."""
  if model.encoder not in ENCODERS:
    raise errors.ConfigError(
        f"Unknown encoder {model.encoder!r}: choose one of {sorted(ENCODERS)}.")
  return ENCODERS[model.encoder](num_slots=num_slots, slot_dim=model.slot_dim,
                                 variational=model.variational,
                                 **_kwargs(model.encoders[model.encoder]))
