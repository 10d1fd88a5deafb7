"""A study of ID against OOD perception, above the scores it reads (`compgen.evaluation`).

  experiment   every method (encoder, search, replay, replay + search) for the configured
               decoder and its control, trained, inferred, scored and written up
  sweep        the experiment over a grid of settings, as one map
  supervised   the references that read the labels: an encoder (and decoder) trained on them
  composition  the recombined-ID-slots diagnostic, which locates an OOD failure
"""
